import type { Config } from '../config.js';
import { computeNextRun, validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import { logger } from '../logger.js';
import type { ScheduledTask } from '../types.js';

export interface TaskRunOutcome {
  status: 'success' | 'error';
  result: string | null;
  error?: string;
}

export interface SchedulerDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'safetyPollMs'>;
  queue: { enqueueTask(chatJid: string, taskId: string, run: () => Promise<void>): void };
  runTask(task: ScheduledTask): Promise<TaskRunOutcome>;
  onTasksChanged?(groupFolder: string): void;
  now?: () => number;
  /** Full re-check, a net for clock jumps and sleep; default one minute. */
  safetyCheckMs?: number;
}

/** setTimeout's largest delay; longer waits are re-armed when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** What last_result keeps of a run's output; the run log keeps more. */
const LAST_RESULT_CHARS = 500;
const RUN_LOG_CHARS = 10_000;
/** `due(FAR_FUTURE)` lists every active task. */
const FAR_FUTURE = '9999-12-31T23:59:59.999Z';

/**
 * One timer is armed for the earliest next run; when it fires, every due task is claimed (its next
 * run persisted first) and handed to the group queue. Changes by another process (`nanoclaw
 * tasks`) are noticed through SQLite's data_version.
 */
export class TaskScheduler {
  private timer: NodeJS.Timeout | undefined;
  private safetyTimer: NodeJS.Timeout | undefined;
  private externalTimer: NodeJS.Timeout | undefined;
  private running = false;
  private dataVersion = 0;
  /** Queued or running: never enqueued twice. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dataVersion = this.readDataVersion();
    this.closeInterruptedOnceTasks();
    this.safetyTimer = setInterval(
      () => this.fire(),
      Math.min(this.deps.safetyCheckMs ?? 60_000, MAX_TIMER_MS),
    );
    this.externalTimer = setInterval(
      () => this.checkExternalChanges(),
      Math.min(this.deps.config.safetyPollMs, MAX_TIMER_MS),
    );
    // Overdue after downtime: each task runs once, its next run counted from now.
    this.fire();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.safetyTimer);
    clearInterval(this.externalTimer);
    this.timer = this.safetyTimer = this.externalTimer = undefined;
  }

  reschedule(): void {
    this.fire();
  }

  inFlightTaskIds(): string[] {
    return [...this.inFlight];
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  private fire(): void {
    if (!this.running) return;
    try {
      this.claimDueTasks();
    } catch (err) {
      logger.error({ err }, 'scheduler failed to claim due tasks');
    }
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return;
    let next: ScheduledTask | undefined;
    try {
      next = this.deps.store.tasks.due(FAR_FUTURE).find((task) => !this.inFlight.has(task.id));
    } catch (err) {
      logger.error({ err }, 'scheduler failed to read next due task');
      return; // the safety check re-arms later
    }
    if (!next?.nextRun) return;
    const delay = Math.min(Math.max(Date.parse(next.nextRun) - this.now(), 0), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private claimDueTasks(): void {
    const now = this.now();
    for (const task of this.deps.store.tasks.due(new Date(now).toISOString())) {
      if (this.inFlight.has(task.id)) continue;
      const nextRun = this.followingRun(task, now);
      if (nextRun === undefined) continue;
      // Persisted before the run, so a crash mid-run doesn't run an interval task twice.
      this.deps.store.tasks.update(task.id, { nextRun });
      this.inFlight.add(task.id);
      logger.info({ taskId: task.id, group: task.groupFolder, nextRun }, 'task due');
      this.deps.queue.enqueueTask(task.chatJid, task.id, () => this.execute(task));
      this.notifyChanged(task.groupFolder);
    }
  }

  /** null for `once`; undefined when the stored schedule is unusable. */
  private followingRun(task: ScheduledTask, now: number): string | null | undefined {
    if (task.scheduleType === 'once') return null;
    const { timezone } = this.deps.config;
    const next = computeNextRun(task.scheduleType, task.scheduleValue, { from: new Date(now), timezone });
    if (next !== null) return next;
    const check = validateSchedule(task.scheduleType, task.scheduleValue, timezone);
    logger.warn(
      { taskId: task.id, error: check.ok ? 'no next run' : check.error },
      'task schedule unusable; pausing task',
    );
    this.deps.store.tasks.update(task.id, { status: 'paused' });
    this.notifyChanged(task.groupFolder);
    return undefined;
  }

  private async execute(claimed: ScheduledTask): Promise<void> {
    try {
      // Paused or cancelled while queued, it doesn't run; updated, it runs as is.
      const task = this.deps.store.tasks.byId(claimed.id);
      if (task?.status !== 'active') {
        logger.info({ taskId: claimed.id, status: task?.status ?? 'cancelled' }, 'task run skipped');
        return;
      }
      const started = this.now();
      let outcome: TaskRunOutcome;
      try {
        outcome = await this.deps.runTask(task);
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
        durationMs: Math.max(0, this.now() - started),
        status: outcome.status,
        result: outcome.result?.slice(0, RUN_LOG_CHARS) ?? null,
        error,
      },
      // A once task has next_run null, so recording the run marks it completed.
      current.nextRun,
      lastResult.slice(0, LAST_RESULT_CHARS),
    );
  }

  /**
   * An active `once` task with neither next nor last run was claimed by a host that stopped
   * mid-run: close it rather than leave it active forever (never run it twice).
   */
  private closeInterruptedOnceTasks(): void {
    try {
      for (const task of this.deps.store.tasks.all()) {
        if (task.status !== 'active' || task.scheduleType !== 'once') continue;
        if (task.nextRun !== null || task.lastRun !== null || this.inFlight.has(task.id)) continue;
        const error = 'the host stopped before this run finished';
        this.recordOutcome(task, this.now(), { status: 'error', result: null, error });
        logger.warn({ taskId: task.id }, 'once task interrupted by a host stop; closed');
        this.notifyChanged(task.groupFolder);
      }
    } catch (err) {
      logger.error({ err }, 'failed to close interrupted once tasks');
    }
  }

  /** data_version changes only when another connection (the CLI) commits. */
  private checkExternalChanges(): void {
    const version = this.readDataVersion();
    if (version === this.dataVersion) return;
    this.dataVersion = version;
    logger.debug('task store changed by another process');
    try {
      for (const group of this.deps.store.groups.all()) this.notifyChanged(group.folder);
    } catch (err) {
      logger.error({ err }, 'failed to list groups after an external change');
    }
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
    try {
      this.deps.onTasksChanged?.(groupFolder);
    } catch (err) {
      logger.error({ err, groupFolder }, 'onTasksChanged failed');
    }
  }
}
