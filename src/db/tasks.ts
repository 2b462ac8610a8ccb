import type { ScheduledTask, TaskRunLog, TaskStatus } from '../types.js';
import type { Db } from './store.js';

interface TaskRow {
  id: string;
  group_folder: string;
  chat_jid: string;
  prompt: string;
  schedule_type: ScheduledTask['scheduleType'];
  schedule_value: string;
  context_mode: ScheduledTask['contextMode'];
  next_run: string | null;
  last_run: string | null;
  last_result: string | null;
  status: TaskStatus;
  created_at: string;
}

function toTask(r: TaskRow): ScheduledTask {
  return {
    id: r.id,
    groupFolder: r.group_folder,
    chatJid: r.chat_jid,
    prompt: r.prompt,
    scheduleType: r.schedule_type,
    scheduleValue: r.schedule_value,
    contextMode: r.context_mode,
    nextRun: r.next_run,
    lastRun: r.last_run,
    lastResult: r.last_result,
    status: r.status,
    createdAt: r.created_at,
  };
}

export type TaskUpdate = Partial<
  Pick<ScheduledTask, 'prompt' | 'scheduleType' | 'scheduleValue' | 'contextMode' | 'nextRun' | 'status'>
>;

export class TaskRepo {
  constructor(private readonly db: Db) {}

  create(task: ScheduledTask): void {
    this.db
      .prepare(
        `INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type, schedule_value, context_mode,
           next_run, last_run, last_result, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        task.id,
        task.groupFolder,
        task.chatJid,
        task.prompt,
        task.scheduleType,
        task.scheduleValue,
        task.contextMode,
        task.nextRun,
        task.lastRun,
        task.lastResult,
        task.status,
        task.createdAt,
      );
  }

  byId(id: string): ScheduledTask | undefined {
    const row = this.db.prepare('SELECT * FROM scheduled_tasks WHERE id = ?').get(id) as TaskRow | undefined;
    return row && toTask(row);
  }

  all(): ScheduledTask[] {
    return (this.db.prepare('SELECT * FROM scheduled_tasks ORDER BY created_at').all() as TaskRow[]).map(
      toTask,
    );
  }

  forGroup(groupFolder: string): ScheduledTask[] {
    return (
      this.db
        .prepare('SELECT * FROM scheduled_tasks WHERE group_folder = ? ORDER BY created_at')
        .all(groupFolder) as TaskRow[]
    ).map(toTask);
  }

  countActive(groupFolder: string): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM scheduled_tasks WHERE group_folder = ? AND status = 'active'`)
      .get(groupFolder) as { n: number };
    return row.n;
  }

  /** Active tasks due at or before `nowIso`, earliest first. */
  due(nowIso: string): ScheduledTask[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM scheduled_tasks WHERE status = 'active' AND next_run IS NOT NULL AND next_run <= ?
           ORDER BY next_run`,
        )
        .all(nowIso) as TaskRow[]
    ).map(toTask);
  }

  /** The earliest next_run among active tasks, for arming the scheduler's timer. */
  nextDueTime(): string | undefined {
    const row = this.db
      .prepare(
        `SELECT MIN(next_run) AS t FROM scheduled_tasks WHERE status = 'active' AND next_run IS NOT NULL`,
      )
      .get() as { t: string | null };
    return row.t ?? undefined;
  }

  update(id: string, update: TaskUpdate): void {
    const columns: Record<keyof TaskUpdate, string> = {
      prompt: 'prompt',
      scheduleType: 'schedule_type',
      scheduleValue: 'schedule_value',
      contextMode: 'context_mode',
      nextRun: 'next_run',
      status: 'status',
    };
    const entries = (Object.keys(update) as Array<keyof TaskUpdate>).filter((k) => update[k] !== undefined);
    if (entries.length === 0) return;
    const sets = entries.map((k) => `${columns[k]} = ?`).join(', ');
    this.db
      .prepare(`UPDATE scheduled_tasks SET ${sets} WHERE id = ?`)
      .run(...entries.map((k) => update[k]), id);
  }

  delete(id: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM task_run_logs WHERE task_id = ?').run(id);
      this.db.prepare('DELETE FROM scheduled_tasks WHERE id = ?').run(id);
    })();
  }

  /** Records a run and moves the task on in one transaction, so a crash can't leave it half-updated. */
  recordRun(log: TaskRunLog, nextRun: string | null, lastResult: string): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(log.taskId, log.runAt, log.durationMs, log.status, log.result, log.error);
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
    const rows = this.db
      .prepare(
        'SELECT task_id, run_at, duration_ms, status, result, error FROM task_run_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?',
      )
      .all(taskId, limit) as Array<{
      task_id: string;
      run_at: string;
      duration_ms: number;
      status: 'success' | 'error';
      result: string | null;
      error: string | null;
    }>;
    return rows.map((r) => ({
      taskId: r.task_id,
      runAt: r.run_at,
      durationMs: r.duration_ms,
      status: r.status,
      result: r.result,
      error: r.error,
    }));
  }
}
