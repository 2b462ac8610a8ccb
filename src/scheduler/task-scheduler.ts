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
  /** Told `taskLeadMs` before a task is due; runs it in the warm sandbox when there is one. */
  warm?: {
    taskLeadMs: number;
    soonDue(task: ScheduledTask): void;
    runTask(task: ScheduledTask): Promise<TaskRunOutcome> | undefined;
  };
}

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's largest delay; a longer wait re-arms

function guard(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, what);
  }
}

/**
 * One timer for the earliest next run. The poll re-checks (a net for clock jumps and sleep) and sees
 * the CLI's changes in SQLite's data_version, which moves only when another connection commits.
 */
export class TaskScheduler {
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private running = false;
  private dataVersion = 0;
  private readonly inFlight = new Set<string>(); // queued or running: never enqueued twice
  private readonly warmed = new Set<string>(); // `<id> <nextRun>` already announced to warm-ahead

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dataVersion = this.readDataVersion();
    guard('failed to close interrupted once tasks', () => this.closeInterruptedOnceTasks());
    this.poll = setInterval(() => this.checkExternalChanges(), this.deps.config.safetyPollMs);
    // Overdue after downtime: each task runs once, its next run counted from now.
    this.reschedule();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.poll);
  }

  inFlightTaskIds(): string[] {
    return [...this.inFlight];
  }

  reschedule(): void {
    if (!this.running) return;
    guard('scheduler failed to claim due tasks', () => this.claimDueTasks());
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    // On a failed read the poll re-arms later. Due by 9999: every active task.
    guard('scheduler failed to read next due task', () => {
      const upcoming = this.deps.store.tasks.due('9999').filter((task) => !this.inFlight.has(task.id));
      if (!this.running || !upcoming[0]) return;
      const at = Math.min(Date.parse(upcoming[0].nextRun!), this.warmSoonDue(upcoming));
      this.timer = setTimeout(() => this.reschedule(), Math.min(Math.max(at - Date.now(), 0), MAX_TIMER_MS));
    });
  }

  /** Announces tasks due within the lead (not yet due); returns when the next one enters it. */
  private warmSoonDue(upcoming: ScheduledTask[]): number {
    const { warm } = this.deps;
    for (const task of warm?.taskLeadMs ? upcoming : []) {
      const due = Date.parse(task.nextRun!);
      if (due - warm!.taskLeadMs > Date.now()) return due - warm!.taskLeadMs;
      const key = `${task.id} ${task.nextRun}`;
      if (due <= Date.now() || this.warmed.has(key)) continue;
      this.warmed.add(key);
      guard('warm-ahead failed', () => warm!.soonDue(task));
    }
    return Infinity;
  }

  private claimDueTasks(): void {
    const { store, config, queue } = this.deps;
    const now = new Date();
    for (const task of store.tasks.due(now.toISOString())) {
      const { id, scheduleType: type, scheduleValue: value } = task;
      if (this.inFlight.has(id)) continue;
      const nextRun =
        type === 'once' ? null : computeNextRun(type, value, { from: now, timezone: config.timezone });
      if (type !== 'once' && nextRun === null) {
        const check = validateSchedule(type, value, config.timezone);
        logger.warn({ taskId: id, error: check.ok || check.error }, 'task schedule unusable; pausing task');
        store.tasks.update(id, { status: 'paused' });
      } else {
        // Persisted before the run, so a crash mid-run doesn't run an interval task twice.
        store.tasks.update(id, { nextRun });
        this.warmed.delete(`${id} ${task.nextRun}`);
        this.inFlight.add(id);
        logger.info({ taskId: id, group: task.groupFolder, nextRun }, 'task due');
        queue.enqueueTask(task.chatJid, id, () => this.execute(task));
      }
      this.notifyChanged(task.groupFolder);
    }
  }

  private async execute({ id, groupFolder }: ScheduledTask): Promise<void> {
    try {
      // Paused or cancelled while queued, it doesn't run; updated, it runs as is.
      const task = this.deps.store.tasks.byId(id);
      if (task?.status !== 'active')
        return logger.info({ taskId: id, status: task?.status }, 'task run skipped');
      const started = Date.now();
      let outcome: TaskRunOutcome;
      try {
        outcome = await (this.deps.warm?.runTask(task) ?? this.deps.runTask(task));
      } catch (err) {
        outcome = { status: 'error', result: null, error: err instanceof Error ? err.message : String(err) };
      }
      this.record(id, started, outcome);
    } catch (err) {
      logger.error({ err, taskId: id }, 'failed to record task run');
    } finally {
      this.inFlight.delete(id);
      this.notifyChanged(groupFolder);
      // Armed, not claimed here: the queue ignores a task enqueued while its last run is still ending.
      this.arm();
    }
  }

  private record(taskId: string, started: number, { status, result, error }: TaskRunOutcome): void {
    logger.info({ taskId, status }, 'task run finished');
    // A cancelled task stays gone; a once task has next_run null, so recording the run completes it.
    const current = this.deps.store.tasks.byId(taskId);
    if (!current) return;
    const failure = status === 'error' ? (error ?? 'unknown error') : null;
    this.deps.store.tasks.recordRun(
      {
        taskId,
        runAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        status,
        result: result?.slice(0, 10_000) ?? null,
        error: failure,
      },
      current.nextRun,
      (failure ? `Error: ${failure}` : result || 'Completed (no output)').slice(0, 500),
    );
  }

  /** An active `once` task with no next or last run was claimed by a stopped host: close, never rerun. */
  private closeInterruptedOnceTasks(): void {
    for (const { id, status, scheduleType, nextRun, lastRun, groupFolder } of this.deps.store.tasks.all()) {
      if (status !== 'active' || scheduleType !== 'once' || nextRun || lastRun || this.inFlight.has(id))
        continue;
      this.record(id, Date.now(), {
        status: 'error',
        result: null,
        error: 'the host stopped before this run finished',
      });
      this.notifyChanged(groupFolder);
    }
  }

  private checkExternalChanges(): void {
    const version = this.readDataVersion();
    if (version !== this.dataVersion)
      guard('failed to list groups after an external change', () => {
        this.dataVersion = version;
        for (const group of this.deps.store.groups.all()) this.notifyChanged(group.folder);
      });
    this.reschedule();
  }

  private readDataVersion(): number {
    return this.deps.store.db.pragma('data_version', { simple: true }) as number;
  }

  private notifyChanged(groupFolder: string): void {
    guard(`onTasksChanged failed for ${groupFolder}`, () => this.deps.onTasksChanged?.(groupFolder));
  }
}
