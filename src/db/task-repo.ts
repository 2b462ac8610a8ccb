import type { ScheduledTask, TaskRunLog } from '../types.js';
import { query, snake, type Db } from './store.js';

const LOG = 'taskId runAt durationMs status result error';

export function taskRepo(db: Db) {
  const { run, all, insert } = query(db);
  const select = (where: string, ...args: unknown[]) =>
    all<ScheduledTask>(`SELECT * FROM scheduled_tasks ${where}`, ...args);
  return {
    create(
      task: Omit<ScheduledTask, 'lastRun' | 'lastResult' | 'status' | 'createdAt'> & Partial<ScheduledTask>,
    ) {
      const row = { status: 'active', createdAt: new Date().toISOString(), ...task };
      insert('scheduled_tasks', Object.keys(row).join(' '), row);
    },
    byId: (id: string) => select('WHERE id = ?', id)[0],
    all: () => select('ORDER BY created_at'),
    countActive: (folder: string) => select(`WHERE group_folder = ? AND status = 'active'`, folder).length,
    due: (nowIso: string) => select(`WHERE status = 'active' AND next_run <= ? ORDER BY next_run`, nowIso),
    update(id: string, change: Partial<ScheduledTask>): void {
      const set = Object.entries(change).filter(([, v]) => v !== undefined);
      if (set.length)
        run(
          `UPDATE scheduled_tasks SET ${set.map(([k]) => `${snake(k)} = ?`)} WHERE id = ?`,
          ...set.map(([, v]) => v),
          id,
        );
    },
    delete: db.transaction((id: string) => {
      run('DELETE FROM task_run_logs WHERE task_id = ?', id);
      run('DELETE FROM scheduled_tasks WHERE id = ?', id);
    }),
    /** A once task (no next run) completes; one cancelled while it ran keeps no log. */
    recordRun: db.transaction((log: TaskRunLog) => {
      const lastResult = (log.error ? `Error: ${log.error}` : log.result || 'Completed (no output)').slice(
        0,
        500,
      );
      const { changes } = run(
        `UPDATE scheduled_tasks SET last_run = @runAt, last_result = @lastResult,
           status = CASE WHEN next_run IS NULL AND status = 'active' THEN 'completed' ELSE status END WHERE id = @taskId`,
        { ...log, lastResult },
      );
      if (changes) insert('task_run_logs', LOG, log);
    }),
    runLogs: (taskId: string, limit = 50) =>
      all<TaskRunLog>(
        `SELECT ${LOG.split(' ').map(snake)} FROM task_run_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?`,
        taskId,
        limit,
      ),
  };
}
