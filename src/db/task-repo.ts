import type { ScheduledTask, TaskRunLog } from '../types.js';
import { query, snake, type Db } from './store.js';

const UPDATABLE = ['prompt', 'scheduleType', 'scheduleValue', 'contextMode', 'nextRun', 'status'] as const;
const LOG = 'taskId runAt durationMs status result error';

export function taskRepo(db: Db) {
  const { run, all, value, insert } = query(db);
  const select = (where: string, ...args: unknown[]) =>
    all<ScheduledTask>(`SELECT * FROM scheduled_tasks ${where}`, ...args);
  return {
    create(task: ScheduledTask): void {
      const fields = 'id groupFolder chatJid prompt scheduleType scheduleValue contextMode nextRun';
      insert('scheduled_tasks', `${fields} lastRun lastResult status createdAt`, task);
    },
    byId: (id: string) => select('WHERE id = ?', id)[0],
    all: () => select('ORDER BY created_at'),
    countActive: (folder: string) =>
      value<number>(
        `SELECT COUNT(*) FROM scheduled_tasks WHERE group_folder = ? AND status = 'active'`,
        folder,
      ),
    due: (nowIso: string) =>
      select(`WHERE status = 'active' AND next_run IS NOT NULL AND next_run <= ? ORDER BY next_run`, nowIso),
    update(id: string, update: Partial<Pick<ScheduledTask, (typeof UPDATABLE)[number]>>): void {
      const keys = UPDATABLE.filter((k) => update[k] !== undefined);
      if (keys.length)
        run(
          `UPDATE scheduled_tasks SET ${keys.map((k) => `${snake(k)} = ?`)} WHERE id = ?`,
          ...keys.map((k) => update[k]),
          id,
        );
    },
    delete(id: string): void {
      db.transaction(() => {
        run('DELETE FROM task_run_logs WHERE task_id = ?', id);
        run('DELETE FROM scheduled_tasks WHERE id = ?', id);
      })();
    },
    /** One transaction, so a crash cannot leave a task half-updated. */
    recordRun(log: TaskRunLog, nextRun: string | null, lastResult: string): void {
      db.transaction(() => {
        insert('task_run_logs', LOG, log);
        run(
          `UPDATE scheduled_tasks SET next_run = ?, last_run = ?, last_result = ?,
             status = CASE WHEN ? IS NULL AND status = 'active' THEN 'completed' ELSE status END WHERE id = ?`,
          nextRun,
          log.runAt,
          lastResult,
          nextRun,
          log.taskId,
        );
      })();
    },
    runLogs: (taskId: string, limit = 50) =>
      all<TaskRunLog>(
        `SELECT ${LOG.split(' ').map(snake)} FROM task_run_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?`,
        taskId,
        limit,
      ),
  };
}
