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
    maxConcurrent: 2,
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
    const { queue } = makeQueue({ maxConcurrent: 1 });
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
