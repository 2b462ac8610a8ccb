import { describe, expect, it } from 'vitest';
import {
  computeNextRun,
  formatLocal,
  MIN_INTERVAL_MS,
  validateSchedule,
} from '../../src/contract/schedule.js';

const BERLIN = 'Europe/Berlin';
const at = (iso: string) => new Date(iso);

function expectError(result: ReturnType<typeof validateSchedule>, pattern: RegExp | string): void {
  expect(result.ok).toBe(false);
  if (!result.ok) expect(result.error).toMatch(pattern);
}

describe('cron schedules', () => {
  it('are evaluated in the configured timezone, before and after the spring DST change', () => {
    // 09:00 in Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
    const opts = (from: string) => ({ from: at(from), timezone: BERLIN });
    expect(computeNextRun('cron', '0 9 * * *', opts('2026-03-27T12:00:00Z'))).toBe(
      '2026-03-28T08:00:00.000Z',
    );
    expect(computeNextRun('cron', '0 9 * * *', opts('2026-03-28T12:00:00Z'))).toBe(
      '2026-03-29T07:00:00.000Z',
    );
    expect(computeNextRun('cron', '0 9 * * *', { from: at('2026-03-28T12:00:00Z'), timezone: 'UTC' })).toBe(
      '2026-03-29T09:00:00.000Z',
    );
  });

  it('return to winter time after the autumn DST change', () => {
    const from = { from: at('2026-10-24T12:00:00Z'), timezone: BERLIN };
    expect(computeNextRun('cron', '0 9 * * *', from)).toBe('2026-10-25T08:00:00.000Z');
    expect(formatLocal(new Date('2026-10-25T08:00:00.000Z'), BERLIN)).toBe('2026-10-25 09:00:00');
  });

  it('give the next run strictly after the given time', () => {
    const from = { from: at('2026-03-28T08:00:00.000Z'), timezone: BERLIN };
    expect(computeNextRun('cron', '0 9 * * *', from)).toBe('2026-03-29T07:00:00.000Z');
  });

  it('accept the hourly-or-slower aliases', () => {
    const check = validateSchedule('cron', '@daily', BERLIN, { now: at('2026-03-28T12:00:00Z') });
    expect(check).toEqual({ ok: true, nextRun: '2026-03-28T23:00:00.000Z' });
  });

  it.each([
    ['61 * * * *', /^invalid cron expression '61 \* \* \* \*': .*59/],
    ['hello', /^invalid cron expression 'hello': use 5 fields/],
    ['* * *', /^invalid cron expression '\* \* \*': use 5 fields/],
    ['*/5 * * * * *', /use 5 fields/],
    ['@secondly', /^invalid cron expression '@secondly'/],
    ['0 0 31 2 *', /^invalid cron expression '0 0 31 2 \*': /],
    ['a b c d e', /^invalid cron expression 'a b c d e': /],
  ])('refuse %s with a message naming it', (value, pattern) => {
    expectError(validateSchedule('cron', value, BERLIN), pattern);
    expect(computeNextRun('cron', value, { from: new Date(), timezone: BERLIN })).toHaveProperty('error');
  });
});

describe('interval schedules', () => {
  it('run the given number of milliseconds after `from`', () => {
    expect(
      computeNextRun('interval', '3600000', { from: at('2026-11-23T10:00:00Z'), timezone: BERLIN }),
    ).toBe('2026-11-23T11:00:00.000Z');
    const check = validateSchedule('interval', String(MIN_INTERVAL_MS), BERLIN, {
      now: at('2026-11-23T10:00:00Z'),
    });
    expect(check).toEqual({ ok: true, nextRun: '2026-11-23T10:01:00.000Z' });
  });

  it.each(['0', '-5', '1.5', 'abc', '1e6', ' ', '60000ms', '99999999999999999999'])(
    'refuse %j as not a positive whole number of milliseconds',
    (value) => {
      expectError(
        validateSchedule('interval', value, BERLIN),
        /^interval must be a positive whole number of milliseconds/,
      );
    },
  );

  it('refuse intervals under one minute, saying the minimum', () => {
    expectError(
      validateSchedule('interval', '59999', BERLIN),
      'interval must be at least 60000 ms, got 59999',
    );
  });

  it('take the minimum from the caller; a stored shorter interval still runs', () => {
    expectError(
      validateSchedule('interval', '1999', BERLIN, { minIntervalMs: 2000 }),
      'interval must be at least 2000 ms, got 1999',
    );
    expectError(
      validateSchedule('interval', '1000', BERLIN, { minIntervalMs: 1500 }),
      'interval must be at least 1500 ms, got 1000',
    );
    expect(validateSchedule('interval', '2000', BERLIN, { minIntervalMs: 2000 }).ok).toBe(true);
    // A task accepted under a lower minimum keeps its schedule if the minimum is raised later.
    expect(computeNextRun('interval', '2000', { from: at('2026-11-23T10:00:00Z'), timezone: BERLIN })).toBe(
      '2026-11-23T10:00:02.000Z',
    );
  });

  it('refuse intervals over ten years', () => {
    expectError(validateSchedule('interval', String(400 * 366 * 86_400_000), BERLIN), /up to ten years, got/);
  });
});

describe('once schedules', () => {
  const now = at('2026-11-23T12:00:00Z');

  it('read a local time in the configured timezone', () => {
    expect(validateSchedule('once', '2026-11-23T15:30:00', BERLIN, { now })).toEqual({
      ok: true,
      nextRun: '2026-11-23T14:30:00.000Z',
    });
    expect(validateSchedule('once', '2026-11-23T15:30', 'America/New_York', { now })).toEqual({
      ok: true,
      nextRun: '2026-11-23T20:30:00.000Z',
    });
    expect(
      validateSchedule('once', '2026-07-01T09:00:00', BERLIN, { now: at('2026-06-01T00:00:00Z') }),
    ).toEqual({
      ok: true,
      nextRun: '2026-07-01T07:00:00.000Z',
    });
  });

  it('accept a leap day only in a leap year', () => {
    expect(validateSchedule('once', '2028-02-29T10:00', BERLIN, { now }).ok).toBe(true);
    expectError(validateSchedule('once', '2027-02-29T10:00', BERLIN, { now }), 'is not a real date and time');
  });

  it('move a time skipped by the spring DST change forward by the gap', () => {
    // 02:30 does not exist on 2026-03-29 in Berlin; it becomes 03:30 CEST.
    const check = validateSchedule('once', '2026-03-29T02:30', BERLIN, { now: at('2026-03-01T00:00:00Z') });
    expect(check).toEqual({ ok: true, nextRun: '2026-03-29T01:30:00.000Z' });
  });

  it('take the earlier of a time that happens twice in the autumn', () => {
    const check = validateSchedule('once', '2026-10-25T02:30', BERLIN, { now: at('2026-10-01T00:00:00Z') });
    expect(check).toEqual({ ok: true, nextRun: '2026-10-25T00:30:00.000Z' });
  });

  it.each([
    '2026-02-30T10:00',
    '2026-13-01T10:00',
    '2026-11-23T24:00',
    '2026-11-23T10:60',
    '2026-04-31T10:00:00',
  ])('refuse %s as not a real date and time', (value) => {
    expectError(
      validateSchedule('once', value, BERLIN, { now }),
      `once time '${value}' is not a real date and time`,
    );
  });

  it.each([
    '2026-11-23T15:30:00Z',
    '2026-11-23T15:30:00+01:00',
    '2026-11-23',
    'tomorrow 3pm',
    '2026-11-23 15:30',
  ])('refuse %s as not a local time without Z or offset', (value) => {
    expectError(
      validateSchedule('once', value, BERLIN, { now }),
      /^once must be a local time like 2026-11-23T15:30:00 without Z or offset/,
    );
  });

  it('refuse a time more than a minute in the past, allow one within the minute', () => {
    // 12:00Z is 13:00 in Berlin.
    expectError(
      validateSchedule('once', '2026-11-23T12:58:00', BERLIN, { now }),
      "once time '2026-11-23T12:58:00' is in the past (now it is 2026-11-23 13:00:00 in Europe/Berlin)",
    );
    expect(validateSchedule('once', '2026-11-23T12:59:30', BERLIN, { now })).toEqual({
      ok: true,
      nextRun: '2026-11-23T11:59:30.000Z',
    });
  });

  it('compute the instant even when past (callers decide what that means)', () => {
    expect(computeNextRun('once', '2020-01-01T00:00', { from: now, timezone: 'UTC' })).toBe(
      '2020-01-01T00:00:00.000Z',
    );
  });
});

it('refuses an unknown timezone by name', () => {
  expectError(validateSchedule('cron', '0 9 * * *', 'Mars/Olympus'), "unknown timezone 'Mars/Olympus'");
  expect(computeNextRun('interval', '60000', { from: new Date(), timezone: 'Mars/Olympus' })).toHaveProperty(
    'error',
  );
});
