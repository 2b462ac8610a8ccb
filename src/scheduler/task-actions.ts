import { computeNextRun } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import type { ScheduledTask } from '../types.js';

function act(store: Store, id: string, fn: (task: ScheduledTask) => string | void, anyStatus = false) {
  const task = store.tasks.byId(id);
  const error = !task
    ? `task '${id}' not found`
    : task.status === 'completed' && !anyStatus
      ? `task '${id}' is completed`
      : fn(task);
  return error ? { ok: false as const, error } : { ok: true as const, task: store.tasks.byId(id) ?? task! };
}

export const pauseTask = (store: Store, id: string) =>
  act(store, id, (task) => void (task.status === 'active' && store.tasks.update(id, { status: 'paused' })));

/** No catch-up; a past `once` task runs now. */
export const resumeTask = (store: Store, id: string, timezone: string, now: Date) =>
  act(store, id, ({ status, scheduleType: type, scheduleValue: value, lastRun }) => {
    if (status === 'active') return;
    // It ran while paused mid-run: never twice.
    if (type === 'once' && lastRun) return `task '${id}' is a once task that already ran`;
    const next = computeNextRun(type, value, { from: now, timezone });
    if (typeof next !== 'string') return `task '${id}' cannot resume: ${next.error}`;
    store.tasks.update(id, { status: 'active', nextRun: Date.parse(next) < +now ? now.toISOString() : next });
  });

export const cancelTask = (store: Store, id: string) => act(store, id, () => store.tasks.delete(id), true);
