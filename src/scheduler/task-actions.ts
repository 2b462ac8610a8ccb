import { computeNextRun, validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import type { ScheduledTask } from '../types.js';

// The same rules for an agent (IPC) and the person (`nanoclaw tasks`); the caller checks who asks.

export type TaskActionResult = { ok: true; task: ScheduledTask } | { ok: false; error: string };

function act(
  store: Store,
  id: string,
  fn: (task: ScheduledTask) => string | void,
  anyStatus = false,
): TaskActionResult {
  const task = store.tasks.byId(id);
  const error = !task
    ? `task '${id}' not found`
    : task.status === 'completed' && !anyStatus
      ? `task '${id}' is completed`
      : fn(task);
  return error ? { ok: false, error } : { ok: true, task: store.tasks.byId(id) ?? task! };
}

export const pauseTask = (store: Store, id: string) =>
  act(store, id, (task) => void (task.status === 'active' && store.tasks.update(id, { status: 'paused' })));

/** Counted from now, no catch-up; a `once` task keeps its time if still ahead, else runs now. */
export const resumeTask = (store: Store, id: string, timezone: string, now: Date) =>
  act(store, id, ({ status, scheduleType: type, scheduleValue: value, lastRun }) => {
    if (status === 'active') return;
    // It ran while paused mid-run: never twice.
    if (type === 'once' && lastRun !== null) return `task '${id}' is a once task that already ran`;
    const next = computeNextRun(type, value, { from: now, timezone });
    if (next === null) {
      const check = validateSchedule(type, value, timezone, { now });
      return `task '${id}' cannot resume: ${check.ok ? 'no next run' : check.error}`;
    }
    store.tasks.update(id, {
      status: 'active',
      nextRun: Date.parse(next) < now.getTime() ? now.toISOString() : next,
    });
  });

export const cancelTask = (store: Store, id: string) => act(store, id, () => store.tasks.delete(id), true);
