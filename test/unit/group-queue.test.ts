import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GroupQueue, type GroupQueueDeps } from '../../src/group-queue.js';

/** A run whose end the test controls. */
function deferred() {
  let resolve!: (ok: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

function makeQueue(overrides: Partial<GroupQueueDeps> = {}) {
  const calls: string[] = [];
  const runs = new Map<string, Array<ReturnType<typeof deferred>>>();
  const deps: GroupQueueDeps = {
    maxConcurrentContainers: 2,
    retryBaseMs: 5000,
    maxRetries: 5,
    processMessages: (jid) => {
      calls.push(`start:${jid}`);
      const d = deferred();
      runs.set(jid, [...(runs.get(jid) ?? []), d]);
      return d.promise;
    },
    writeInput: (jid, text) => calls.push(`input:${jid}:${text}`),
    writeClose: (jid) => calls.push(`close:${jid}`),
    ...overrides,
  };
  const finish = async (jid: string, ok = true) => {
    const d = runs.get(jid)!.shift()!;
    d.resolve(ok);
    await vi.advanceTimersByTimeAsync(0);
  };
  return { queue: new GroupQueue(deps), calls, finish };
}

describe('GroupQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('runs one sandbox per group at a time and groups in parallel up to the cap', async () => {
    const { queue, calls, finish } = makeQueue();
    queue.enqueueMessageCheck('a');
    queue.enqueueMessageCheck('a');
    queue.enqueueMessageCheck('b');
    queue.enqueueMessageCheck('c');
    expect(calls).toEqual(['start:a', 'start:b']);
    expect(queue.runningCount).toBe(2);

    await finish('a');
    // a's own pending check goes first, c still waits for a free slot.
    expect(calls).toEqual(['start:a', 'start:b', 'start:a']);
    await finish('b');
    expect(calls).toEqual(['start:a', 'start:b', 'start:a', 'start:c']);
    await finish('a');
    await finish('c');
    expect(queue.runningCount).toBe(0);
  });

  it('pipes follow-ups into a running message sandbox instead of starting another', async () => {
    const { queue, calls, finish } = makeQueue();
    expect(queue.sendMessage('a', 'x')).toBe(false);
    queue.enqueueMessageCheck('a');
    expect(queue.sendMessage('a', 'follow-up')).toBe(true);
    expect(calls).toEqual(['start:a', 'input:a:follow-up']);
    await finish('a');
    expect(queue.sendMessage('a', 'late')).toBe(false);
  });

  it('runs pending tasks before pending messages and closes an idle sandbox for a due task', async () => {
    const { queue, calls, finish } = makeQueue();
    const order: string[] = [];
    queue.enqueueMessageCheck('a');
    queue.notifyIdle('a');
    queue.enqueueMessageCheck('a');
    queue.enqueueTask('a', 't1', async () => {
      order.push('task');
    });
    expect(calls).toContain('close:a');
    await finish('a');
    expect(order).toEqual(['task']);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.filter((c) => c === 'start:a')).toHaveLength(2);
    await finish('a');
  });

  it('does not queue the same task twice', async () => {
    const { queue } = makeQueue({ maxConcurrentContainers: 1 });
    let runs = 0;
    const gate = deferred();
    queue.enqueueTask('a', 't', async () => {
      runs++;
      await gate.promise;
    });
    queue.enqueueTask('a', 't', async () => {
      runs++;
    });
    gate.resolve(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toBe(1);
  });

  it('retries a failed run after 5, 10, 20, 40, 80 s, then waits for the next message', async () => {
    const gaveUp: string[] = [];
    const { queue, calls, finish } = makeQueue({ onGaveUp: (jid) => gaveUp.push(jid) });
    queue.enqueueMessageCheck('a');
    await finish('a', false);
    for (const delay of [5000, 10000, 20000, 40000, 80000]) {
      const before = calls.length;
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(calls.length).toBe(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls.length).toBe(before + 1);
      await finish('a', false);
    }
    expect(gaveUp).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(calls.filter((c) => c === 'start:a')).toHaveLength(6);
    queue.enqueueMessageCheck('a');
    expect(calls.filter((c) => c === 'start:a')).toHaveLength(7);
    await finish('a', true);
  });

  it('shutdown stops taking work, closes running sandboxes and waits for them', async () => {
    const { queue, calls, finish } = makeQueue();
    queue.enqueueMessageCheck('a');
    const done = queue.shutdown(10_000);
    expect(calls).toContain('close:a');
    queue.enqueueMessageCheck('b');
    expect(calls).not.toContain('start:b');
    await finish('a');
    await expect(done).resolves.toBe(true);
  });

  it('shutdown gives up after the grace period', async () => {
    const { queue } = makeQueue();
    queue.enqueueMessageCheck('a');
    const done = queue.shutdown(10_000);
    await vi.advanceTimersByTimeAsync(10_000);
    await expect(done).resolves.toBe(false);
  });
});

describe('GroupQueue warm starts', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  const WARM = { idleMs: 60_000, max: 2 };

  function warmRun() {
    const d = deferred();
    return { done: d.resolve, run: () => d.promise };
  }

  it('counts a warm sandbox, closes it after the warm idle and frees its slot', async () => {
    const { queue, calls } = makeQueue();
    const w = warmRun();
    expect(queue.startWarm('a', WARM, w.run)).toBe(true);
    expect(queue.isWarm('a') && queue.isActive('a')).toBe(true);
    expect(queue.runningCount).toBe(1);
    expect(queue.startWarm('a', WARM, w.run)).toBe(false);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual(['close:a']);
    // Closing: a message now waits for the next run instead of being piped into it.
    expect(queue.sendMessage('a', 'late')).toBe(false);
    w.done(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(queue.runningCount).toBe(0);
    expect(queue.isWarm('a')).toBe(false);
  });

  it('turns into a real run when a message is piped in: no warm idle close then', async () => {
    const { queue, calls } = makeQueue();
    queue.startWarm('a', WARM, warmRun().run);
    expect(queue.sendMessage('a', 'hello')).toBe(true);
    expect(queue.isWarm('a')).toBe(false);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toEqual(['input:a:hello']);
  });

  it('starts only into a free slot nobody waits for, at most `max` at once', async () => {
    const { queue, finish } = makeQueue({ maxConcurrentContainers: 3 });
    expect(queue.startWarm('a', { ...WARM, max: 1 }, warmRun().run)).toBe(true);
    expect(queue.startWarm('b', { ...WARM, max: 1 }, warmRun().run)).toBe(false);
    queue.enqueueMessageCheck('c');
    queue.enqueueMessageCheck('d');
    // Full: c and d run, a warm one holds the third slot; e must wait and closes the warm one.
    queue.enqueueMessageCheck('e');
    expect(queue.startWarm('f', WARM, warmRun().run)).toBe(false);
    await finish('c');
    expect(queue.isActive('e')).toBe(true);
    expect(queue.startWarm('f', WARM, warmRun().run)).toBe(false);
    await finish('d');
    expect(queue.startWarm('f', WARM, warmRun().run)).toBe(true);
  });

  it('closes a warm sandbox as soon as a real run waits for a slot', async () => {
    const { queue, calls } = makeQueue({ maxConcurrentContainers: 1 });
    const w = warmRun();
    queue.startWarm('a', WARM, w.run);
    queue.enqueueMessageCheck('b');
    expect(calls).toEqual(['close:a']);
    w.done(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(['close:a', 'start:b']);
  });

  it('gives a task its own warm sandbox at its due time and keeps messages out of it', async () => {
    const { queue, calls } = makeQueue();
    const w = warmRun();
    queue.startWarm('a', { ...WARM, taskId: 't1' }, w.run);
    expect(queue.sendMessage('a', 'hi')).toBe(false);
    let ran = 0;
    queue.enqueueTask('a', 't1', async () => {
      ran++;
    });
    expect(ran).toBe(1);
    expect(queue.runningCount).toBe(1);
    expect(queue.isWarm('a')).toBe(false);
    // The task's run ended while its sandbox still runs: it is asked to close.
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(['close:a']);
    w.done(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(queue.runningCount).toBe(0);
  });

  it('closes a warm sandbox for another task or a message, which then run after it', async () => {
    const { queue, calls, finish } = makeQueue();
    const w = warmRun();
    queue.startWarm('a', { ...WARM, taskId: 't1' }, w.run);
    let ran = 0;
    queue.enqueueTask('a', 't2', async () => {
      ran++;
    });
    queue.enqueueMessageCheck('a');
    expect(calls).toEqual(['close:a']);
    w.done(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(ran).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(['close:a', 'start:a']);
    await finish('a');
  });
});
