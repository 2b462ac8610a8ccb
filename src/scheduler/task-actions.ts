import { computeNextRun, validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import type { ScheduledTask } from '../types.js';

/** The same rules for an agent (IPC) and the person (`nanoclaw tasks`); the caller checks who asks. */

type Refused = { ok: false; error: string };
export type TaskActionResult = { ok: true; task: ScheduledTask } | Refused;

function find(store: Store, taskId: string, allowCompleted = false): ScheduledTask | Refused {
  const task = store.tasks.byId(taskId);
  if (!task) return { ok: false, error: `task '${taskId}' not found` };
  if (task.status === 'completed' && !allowCompleted)
    return { ok: false, error: `task '${taskId}' is completed` };
  return task;
}

export function pauseTask(store: Store, taskId: string): TaskActionResult {
  const task = find(store, taskId);
  if ('error' in task) return task;
  if (task.status === 'active') store.tasks.update(taskId, { status: 'paused' });
  return { ok: true, task: store.tasks.byId(taskId)! };
}

/** Counted from now, no catch-up; a `once` task keeps its time if still ahead, else runs now. */
export function resumeTask(store: Store, taskId: string, timezone: string, now: Date): TaskActionResult {
  const task = find(store, taskId);
  if ('error' in task) return task;
  if (task.status === 'active') return { ok: true, task };
  // It ran while paused mid-run: never twice.
  if (task.scheduleType === 'once' && task.lastRun !== null)
    return { ok: false, error: `task '${taskId}' is a once task that already ran` };
  const next = computeNextRun(task.scheduleType, task.scheduleValue, { from: now, timezone });
  if (next === null) {
    const check = validateSchedule(task.scheduleType, task.scheduleValue, timezone, { now });
    return { ok: false, error: `task '${taskId}' cannot resume: ${check.ok ? 'no next run' : check.error}` };
  }
  store.tasks.update(taskId, {
    status: 'active',
    nextRun: Date.parse(next) < now.getTime() ? now.toISOString() : next,
  });
  return { ok: true, task: store.tasks.byId(taskId)! };
}

export function cancelTask(store: Store, taskId: string): TaskActionResult {
  const task = find(store, taskId, true);
  if ('error' in task) return task;
  store.tasks.delete(taskId);
  return { ok: true, task };
}
