import type { Config } from '../config.js';
import { computeNextRun, validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import { logger } from '../logger.js';
import type { AgentOutput, ScheduledTask } from '../types.js';

export type TaskRunOutcome = Omit<AgentOutput, 'newSessionId'>;

export interface SchedulerDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'safetyPollMs'>;
  queue: { enqueueTask(chatJid: string, taskId: string, run: () => Promise<void>): void };
  runTask(task: ScheduledTask): Promise<TaskRunOutcome>;
  onTasksChanged?(groupFolder: string): void;
  /** Full re-check, a net for clock jumps and sleep; default one minute. */
  safetyCheckMs?: number;
  /** Warm-ahead: told `taskLeadMs` before a task is due; runs it in that sandbox when it has one. */
  warm?: {
    taskLeadMs: number;
    soonDue(task: ScheduledTask): void;
    runTask(task: ScheduledTask): Promise<TaskRunOutcome> | undefined;
  };
}

/** setTimeout's largest delay; longer waits are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function guard(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, what);
  }
}

/** One timer for the earliest next run; another process's changes show in SQLite's data_version. */
export class TaskScheduler {
  private timer: NodeJS.Timeout | undefined;
  private intervals: NodeJS.Timeout[] = [];
  private running = false;
  private dataVersion = 0;
  /** Queued or running: never enqueued twice. */
  private readonly inFlight = new Set<string>();
  /** `<id> <nextRun>` of tasks already announced to warm-ahead. */
  private readonly warmed = new Set<string>();

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dataVersion = this.readDataVersion();
    this.closeInterruptedOnceTasks();
    this.intervals = [
      setInterval(() => this.fire(), Math.min(this.deps.safetyCheckMs ?? 60_000, MAX_TIMER_MS)),
      setInterval(() => this.checkExternalChanges(), this.deps.config.safetyPollMs),
    ];
    // Overdue after downtime: each task runs once, its next run counted from now.
    this.fire();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.intervals.forEach(clearInterval);
  }

  reschedule(): void {
    this.fire();
  }

  inFlightTaskIds(): string[] {
    return [...this.inFlight];
  }

  private fire(): void {
    if (!this.running) return;
    guard('scheduler failed to claim due tasks', () => this.claimDueTasks());
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    // On a failed read the safety check re-arms later. Due by 9999: every active task.
    guard('scheduler failed to read next due task', () => {
      const upcoming = this.deps.store.tasks.due('9999').filter((task) => !this.inFlight.has(task.id));
      if (!upcoming[0]?.nextRun) return;
      const at = Math.min(Date.parse(upcoming[0].nextRun), this.warmSoonDue(upcoming));
      const delay = Math.min(Math.max(at - Date.now(), 0), MAX_TIMER_MS);
      this.timer = setTimeout(() => this.fire(), delay);
    });
  }

  /** Announces tasks due within the lead (not yet due); returns when the next one enters it. */
  private warmSoonDue(upcoming: ScheduledTask[]): number {
    const { warm } = this.deps;
    const now = Date.now();
    for (const task of warm?.taskLeadMs ? upcoming : []) {
      const due = Date.parse(task.nextRun!);
      if (due - warm!.taskLeadMs > now) return due - warm!.taskLeadMs;
      const key = `${task.id} ${task.nextRun}`;
      if (due <= now || this.warmed.has(key)) continue;
      this.warmed.add(key);
      guard('warm-ahead failed', () => warm!.soonDue(task));
    }
    return Infinity;
  }

  private claimDueTasks(): void {
    const { store, config, queue } = this.deps;
    const now = new Date();
    for (const task of store.tasks.due(now.toISOString())) {
      if (this.inFlight.has(task.id)) continue;
      const { scheduleType: type, scheduleValue: value } = task;
      const nextRun =
        type === 'once' ? null : computeNextRun(type, value, { from: now, timezone: config.timezone });
      if (type !== 'once' && nextRun === null) {
        const check = validateSchedule(type, value, config.timezone);
        const error = check.ok ? 'no next run' : check.error;
        logger.warn({ taskId: task.id, error }, 'task schedule unusable; pausing task');
        store.tasks.update(task.id, { status: 'paused' });
      } else {
        // Persisted before the run, so a crash mid-run doesn't run an interval task twice.
        store.tasks.update(task.id, { nextRun });
        this.warmed.delete(`${task.id} ${task.nextRun}`);
        this.inFlight.add(task.id);
        logger.info({ taskId: task.id, group: task.groupFolder, nextRun }, 'task due');
        queue.enqueueTask(task.chatJid, task.id, () => this.execute(task));
      }
      this.notifyChanged(task.groupFolder);
    }
  }

  private async execute(claimed: ScheduledTask): Promise<void> {
    try {
      // Paused or cancelled while queued, it doesn't run; updated, it runs as is.
      const task = this.deps.store.tasks.byId(claimed.id);
      if (task?.status !== 'active') {
        logger.info({ taskId: claimed.id, status: task?.status ?? 'cancelled' }, 'task run skipped');
        return;
      }
      const started = Date.now();
      let outcome: TaskRunOutcome;
      try {
        outcome = await (this.deps.warm?.runTask(task) ?? this.deps.runTask(task));
      } catch (err) {
        outcome = { status: 'error', result: null, error: err instanceof Error ? err.message : String(err) };
      }
      this.recordOutcome(task, started, outcome);
    } catch (err) {
      logger.error({ err, taskId: claimed.id }, 'failed to record task run');
    } finally {
      this.inFlight.delete(claimed.id);
      this.notifyChanged(claimed.groupFolder);
      this.arm();
    }
  }

  private recordOutcome(task: ScheduledTask, started: number, outcome: TaskRunOutcome): void {
    const current = this.deps.store.tasks.byId(task.id);
    logger.info({ taskId: task.id, status: outcome.status }, 'task run finished');
    if (!current) return;
    const error = outcome.status === 'error' ? (outcome.error ?? 'unknown error') : null;
    const lastResult = error ? `Error: ${error}` : outcome.result || 'Completed (no output)';
    this.deps.store.tasks.recordRun(
      {
        taskId: task.id,
        runAt: new Date(started).toISOString(),
        durationMs: Math.max(0, Date.now() - started),
        status: outcome.status,
        result: outcome.result?.slice(0, 10_000) ?? null,
        error,
      },
      // A once task has next_run null, so recording the run marks it completed.
      current.nextRun,
      lastResult.slice(0, 500),
    );
  }

  /** An active `once` task with no next or last run was claimed by a stopped host: close, never rerun. */
  private closeInterruptedOnceTasks(): void {
    guard('failed to close interrupted once tasks', () => {
      for (const task of this.deps.store.tasks.all()) {
        if (task.status !== 'active' || task.scheduleType !== 'once') continue;
        if (task.nextRun !== null || task.lastRun !== null || this.inFlight.has(task.id)) continue;
        const error = 'the host stopped before this run finished';
        this.recordOutcome(task, Date.now(), { status: 'error', result: null, error });
        logger.warn({ taskId: task.id }, 'once task interrupted by a host stop; closed');
        this.notifyChanged(task.groupFolder);
      }
    });
  }

  /** data_version changes only when another connection (the CLI) commits. */
  private checkExternalChanges(): void {
    const version = this.readDataVersion();
    if (version === this.dataVersion) return;
    this.dataVersion = version;
    guard('failed to list groups after an external change', () => {
      for (const group of this.deps.store.groups.all()) this.notifyChanged(group.folder);
    });
    this.fire();
  }

  private readDataVersion(): number {
    try {
      return this.deps.store.db.pragma('data_version', { simple: true }) as number;
    } catch {
      return this.dataVersion;
    }
  }

  private notifyChanged(groupFolder: string): void {
    guard(`onTasksChanged failed for ${groupFolder}`, () => this.deps.onTasksChanged?.(groupFolder));
  }
}
