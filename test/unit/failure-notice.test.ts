import { afterEach, describe, expect, it, vi } from 'vitest';
import { failure, FailureNotices, noticeText } from '../../src/failure-notice.js';

describe('failure notices', () => {
  afterEach(() => void vi.useRealTimers());

  it.each([
    ['no-credentials', 'permanent', /no credentials are set\. Add ANTHROPIC_API_KEY/],
    ['invalid-credentials', 'permanent', /refused the credentials/],
    ['budget-spent', 'permanent', /daily model budget is spent/],
    ['image-missing', 'permanent', /agent image is missing\. Run `nanoclaw build`/],
    ['runtime-missing', 'permanent', /container runtime is not available/],
    ['invalid-request', 'permanent', /refused my request as invalid/],
    ['upstream', 'transient', /isn’t answering properly\. I’m retrying/],
    ['timeout', 'transient', /did not answer in time\. I’m retrying/],
    ['sandbox-crash', 'transient', /sandbox stopped unexpectedly\. I’m retrying/],
    ['runtime-restarting', 'transient', /runtime is restarting\. I’m retrying/],
    ['unknown', 'transient', /something went wrong\. I’m retrying/],
  ] as const)('%s is %s', (cause, kind, text) => {
    const f = failure(cause);
    expect(f).toEqual({ kind, cause });
    expect(noticeText(f)).toMatch(text);
    if (kind === 'transient')
      expect(noticeText(f, 'gave-up')).toMatch(/I’ll try again when you send another/);
  });

  function notices(holds: Map<string, boolean | undefined>) {
    const sent: string[] = [];
    const resumed: string[] = [];
    const n = new FailureNotices({
      send: async (_jid, text) => sent.push(text),
      precheck: ['no-credentials'],
      holds: async (cause) => holds.get(cause) ?? false,
      resume: (jid) => resumed.push(jid),
      recheckMs: 1_000,
    });
    return { n, sent, resumed };
  }

  it('a permanent cause: each message is told, those of the same minute share one notice, no run starts', async () => {
    vi.useFakeTimers();
    const holds = new Map([['no-credentials', true as boolean | undefined]]);
    const { n, sent } = notices(holds);
    expect(await n.gate('a', 'fa', 1)).toBe(true);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await n.gate('a', 'fa', 2)).toBe(true); // same minute: shares the first notice
    expect(await n.gate('a', 'fa', 2)).toBe(true); // no new message: no notice
    await vi.advanceTimersByTimeAsync(40_000);
    expect(await n.gate('a', 'fa', 2)).toBe(true); // the minute is over, but no new message
    expect(await n.gate('a', 'fa', 3)).toBe(true);
    await vi.advanceTimersByTimeAsync(70_000);
    expect(await n.gate('a', 'fa', 4)).toBe(true);
    expect(sent).toHaveLength(3);
    expect(new Set(sent).size).toBe(1);
    expect(sent[0]).toMatch(/no credentials are set/);
    // Another chat is told on its own.
    expect(await n.gate('b', 'fb', 1)).toBe(true);
    expect(sent).toHaveLength(4);
    holds.set('no-credentials', false);
    expect(await n.gate('a', 'fa', 5)).toBe(false);
    n.mute();
  });

  it('a permanent failure of a run blocks the chat until its cause is gone, then resumes it', async () => {
    vi.useFakeTimers();
    const holds = new Map<string, boolean | undefined>([['image-missing', true]]);
    const { n, sent, resumed } = notices(holds);
    await n.onRunFailed('a', 'fa', failure('image-missing'), 1);
    expect(sent).toEqual([noticeText(failure('image-missing'))]);
    expect(await n.gate('a', 'fa', 1)).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(resumed).toEqual([]);
    holds.set('image-missing', false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(resumed).toEqual(['a']);
    expect(await n.gate('a', 'fa', 2)).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(resumed).toEqual(['a']);
    expect(sent).toHaveLength(1);
  });

  it('a cause that cannot be checked cheaply lets the next message try a run', async () => {
    const holds = new Map<string, boolean | undefined>([['invalid-request', undefined]]);
    const { n, sent } = notices(holds);
    await n.onRunFailed('a', 'fa', failure('invalid-request'), 1);
    expect(await n.gate('a', 'fa', 2)).toBe(false);
    expect(sent).toHaveLength(1);
    n.mute();
  });

  it('transient: told after the second failure of a streak and when the queue gives up; a success ends the streak', async () => {
    const { n, sent } = notices(new Map());
    await n.onRunFailed('a', 'fa', failure('upstream'), 1);
    expect(sent).toEqual([]);
    await n.onRunFailed('a', 'fa', failure('upstream'), 1);
    await n.onRunFailed('a', 'fa', failure('upstream'), 1);
    expect(sent).toEqual([noticeText(failure('upstream'))]);
    await n.onGaveUp('a');
    expect(sent).toEqual([noticeText(failure('upstream')), noticeText(failure('upstream'), 'gave-up')]);
    await n.onRunFailed('b', 'fb', failure('sandbox-crash'), 1);
    n.onRunSucceeded('b');
    await n.onRunFailed('b', 'fb', failure('sandbox-crash'), 2);
    expect(sent).toHaveLength(2);
    n.mute();
    await n.onRunFailed('c', 'fc', failure('timeout'), 1);
    await n.onRunFailed('c', 'fc', failure('timeout'), 1);
    await n.onGaveUp('c');
    expect(sent).toHaveLength(2);
  });
});
