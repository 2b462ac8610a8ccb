import type { Store } from '../db/store.js';
import type { ScheduledTask } from '../types.js';
import { computeNextRun, validateSchedule } from './schedule.js';

/**
 * Pause, resume and cancel: the same rules whether an agent asks (IPC) or the person at the
 * terminal does (`nanoclaw tasks`). Who may ask is checked by the caller, not here.
 */

export type TaskActionResult = { ok: true; task: ScheduledTask } | { ok: false; error: string };

function findTask(store: Store, taskId: string): ScheduledTask | { error: string } {
  return store.tasks.byId(taskId) ?? { error: `task '${taskId}' not found` };
}

/** Pausing a paused task is a no-op; a completed task has nothing left to pause. */
export function pauseTask(store: Store, taskId: string): TaskActionResult {
  const task = findTask(store, taskId);
  if ('error' in task) return { ok: false, error: task.error };
  if (task.status === 'completed') return { ok: false, error: `task '${taskId}' is completed` };
  if (task.status === 'active') store.tasks.update(taskId, { status: 'paused' });
  return { ok: true, task: store.tasks.byId(taskId)! };
}

/**
 * A resumed task gets a fresh next run: cron and interval count from now (no catch-up of what
 * was missed while paused); a `once` task keeps its time if still ahead, else it runs now.
 */
export function resumeTask(store: Store, taskId: string, timezone: string, now: Date): TaskActionResult {
  const task = findTask(store, taskId);
  if ('error' in task) return { ok: false, error: task.error };
  if (task.status === 'completed') return { ok: false, error: `task '${taskId}' is completed` };
  if (task.status === 'active') return { ok: true, task };
  // A once task that already ran while paused mid-run must not run a second time.
  if (task.scheduleType === 'once' && task.lastRun !== null) {
    return { ok: false, error: `task '${taskId}' is a once task that already ran` };
  }
  const next = computeNextRun(task.scheduleType, task.scheduleValue, { from: now, timezone });
  if (next === null) {
    const check = validateSchedule(task.scheduleType, task.scheduleValue, timezone, { now });
    const reason = check.ok ? 'no next run' : check.error;
    return { ok: false, error: `task '${taskId}' cannot resume: ${reason}` };
  }
  const nextRun = Date.parse(next) < now.getTime() ? now.toISOString() : next;
  store.tasks.update(taskId, { status: 'active', nextRun });
  return { ok: true, task: store.tasks.byId(taskId)! };
}

/** Cancelling deletes the task and its run logs. */
export function cancelTask(store: Store, taskId: string): TaskActionResult {
  const task = findTask(store, taskId);
  if ('error' in task) return { ok: false, error: task.error };
  store.tasks.delete(taskId);
  return { ok: true, task };
}
