import type { ScheduledTask, TaskRunLog } from '../types.js';
import { camel, type Db } from './store.js';

const UPDATABLE = ['prompt', 'scheduleType', 'scheduleValue', 'contextMode', 'nextRun', 'status'] as const;
type TaskUpdate = Partial<Pick<ScheduledTask, (typeof UPDATABLE)[number]>>;

export class TaskRepo {
  constructor(private readonly db: Db) {}

  private select(where: string, ...args: unknown[]): ScheduledTask[] {
    return this.db
      .prepare(`SELECT * FROM scheduled_tasks ${where}`)
      .all(...args)
      .map(camel<ScheduledTask>);
  }

  create(task: ScheduledTask): void {
    this.db
      .prepare(
        `INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, schedule_value, context_mode,
           next_run, last_run, last_result, status, created_at)
         VALUES (@id, @groupFolder, @chatJid, @prompt, @scheduleType, @scheduleValue, @contextMode,
           @nextRun, @lastRun, @lastResult, @status, @createdAt)`,
      )
      .run(task);
  }

  byId(id: string): ScheduledTask | undefined {
    return this.select('WHERE id = ?', id)[0];
  }

  all(): ScheduledTask[] {
    return this.select('ORDER BY created_at');
  }

  countActive(groupFolder: string): number {
    const sql = `SELECT COUNT(*) FROM scheduled_tasks WHERE group_folder = ? AND status = 'active'`;
    return this.db.prepare(sql).pluck().get(groupFolder) as number;
  }

  due(nowIso: string): ScheduledTask[] {
    return this.select(
      `WHERE status = 'active' AND next_run IS NOT NULL AND next_run <= ? ORDER BY next_run`,
      nowIso,
    );
  }

  update(id: string, update: TaskUpdate): void {
    const keys = UPDATABLE.filter((k) => update[k] !== undefined);
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} = ?`).join(', ');
    this.db.prepare(`UPDATE scheduled_tasks SET ${sets} WHERE id = ?`).run(...keys.map((k) => update[k]), id);
  }

  delete(id: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM task_run_logs WHERE task_id = ?').run(id);
      this.db.prepare('DELETE FROM scheduled_tasks WHERE id = ?').run(id);
    })();
  }

  /** One transaction, so a crash cannot leave a task half-updated. */
  recordRun(log: TaskRunLog, nextRun: string | null, lastResult: string): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error)
           VALUES (@taskId, @runAt, @durationMs, @status, @result, @error)`,
        )
        .run(log);
      this.db
        .prepare(
          `UPDATE scheduled_tasks SET next_run = ?, last_run = ?, last_result = ?,
             status = CASE WHEN ? IS NULL AND status = 'active' THEN 'completed' ELSE status END
           WHERE id = ?`,
        )
        .run(nextRun, log.runAt, lastResult, nextRun, log.taskId);
    })();
  }

  runLogs(taskId: string, limit = 50): TaskRunLog[] {
    const sql = `SELECT task_id, run_at, duration_ms, status, result, error FROM task_run_logs WHERE task_id = ?
      ORDER BY id DESC LIMIT ?`;
    return this.db
      .prepare(sql)
      .all(taskId, limit)
      .map(camel<TaskRunLog>);
  }
}
