import { describe, expect, it } from 'vitest';
import {
  minIntervalFromEnv,
  validateSchedule as agentCheck,
} from '../../container/agent-runner/src/schedule-validation.js';
import { MAX_INTERVAL_MS, validateSchedule as hostCheck } from '../../src/scheduler/schedule.js';
import type { ScheduleType } from '../../src/types.js';

/**
 * The MCP tool checks a schedule in the sandbox before writing it, because a refusal by the host
 * only reaches the host's log. So both must accept exactly the same schedules.
 */

// The agent reads `once` in its process timezone (the sandbox's TZ is the host's): compare in it.
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const NOW = new Date('2026-11-23T12:00:00.000Z');

/** A local wall-clock time `offsetMs` from NOW, as an agent would write it. */
function local(offsetMs: number, withSeconds = true): string {
  const d = new Date(NOW.getTime() + offsetMs);
  const pad = (n: number) => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${date}T${time}${withSeconds ? `:${pad(d.getSeconds())}` : ''}`;
}

const cases: Array<[ScheduleType, string]> = [
  ['cron', '0 9 * * 1'],
  ['cron', ' */5 * * * * '],
  ['cron', '0 9 * * MON-FRI'],
  ['cron', '@daily'],
  ['cron', '@weekdays'],
  ['cron', '@minutely'],
  ['cron', '@secondly'],
  ['cron', '*/5 * * * * *'],
  ['cron', '61 * * * *'],
  ['cron', '0 9 * *'],
  ['cron', 'every day at nine'],
  ['interval', '60000'],
  ['interval', ' 3600000 '],
  ['interval', '59999'],
  ['interval', '2000'],
  ['interval', '1999'],
  ['interval', '0'],
  ['interval', '-5'],
  ['interval', '1.5'],
  ['interval', '1e6'],
  ['interval', '5m'],
  ['interval', '99999999999999999999'],
  ['interval', String(MAX_INTERVAL_MS)],
  ['interval', String(MAX_INTERVAL_MS + 1)],
  ['once', local(60 * 60_000)],
  ['once', local(5 * 60_000, false)],
  ['once', `${local(60_000)}.250`],
  ['once', local(-30_000)],
  ['once', local(-5 * 60_000)],
  ['once', `${local(60 * 60_000)}Z`],
  ['once', `${local(60 * 60_000)}+02:00`],
  ['once', '2027-02-29T10:00'],
  ['once', '2028-02-29T10:00'],
  ['once', '2026-11-23T24:00'],
  ['once', 'tomorrow'],
];

describe('schedule checks in the sandbox and on the host', () => {
  for (const minIntervalMs of [60_000, 2000]) {
    it.each(cases)(`agree on %s %j (minimum interval ${minIntervalMs} ms)`, (type, value) => {
      const host = hostCheck(type, value, TZ, { now: NOW, minIntervalMs });
      const agent = agentCheck(type, value, { tz: TZ, now: NOW, minIntervalMs });
      expect(agent.ok, JSON.stringify({ host, agent })).toBe(host.ok);
      // The agent's refusal quotes what it wrote, so it can see which value was wrong.
      if (!agent.ok) expect(agent.error).toContain(value);
    });
  }

  it('reads the host minimum from the sandbox environment, defaulting to one minute', () => {
    expect(minIntervalFromEnv({ NANOCLAW_MIN_TASK_INTERVAL_MS: '2000' })).toBe(2000);
    expect(minIntervalFromEnv({})).toBe(60_000);
    expect(minIntervalFromEnv({ NANOCLAW_MIN_TASK_INTERVAL_MS: 'soon' })).toBe(60_000);
  });
});
