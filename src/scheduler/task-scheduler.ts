import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { logger } from '../logger.js';
import type { ScheduledTask } from '../types.js';
import { computeNextRun, validateSchedule } from './schedule.js';

export interface TaskRunOutcome {
  status: 'success' | 'error';
  result: string | null;
  error?: string;
}

export interface SchedulerDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'safetyPollMs'>;
  queue: { enqueueTask(chatJid: string, taskId: string, run: () => Promise<void>): void };
  /** Runs the task's sandbox and sends its results to the chat (the host's job, not ours). */
  runTask(task: ScheduledTask): Promise<TaskRunOutcome>;
  /** A task's next run, last run or status changed: the host rewrites current_tasks.json. */
  onTasksChanged?(groupFolder: string): void;
  now?: () => number;
  /** Full re-check of the timer, a net for clock jumps and sleep; default one minute. */
  safetyCheckMs?: number;
}

/** setTimeout's largest delay; longer waits are re-armed when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_SAFETY_CHECK_MS = 60_000;
/** What last_result keeps of a run's output; the run log keeps more. */
const LAST_RESULT_CHARS = 500;
const RUN_LOG_CHARS = 10_000;
/** Any ISO time sorts before this, so `due(FAR_FUTURE)` lists every active scheduled task. */
const FAR_FUTURE = '9999-12-31T23:59:59.999Z';

/**
 * Runs scheduled tasks when they fall due. One timer is armed for the earliest next run; when it
 * fires, every due task is claimed (its next run persisted first) and handed to the group queue.
 * Changes made by another process (`nanoclaw tasks`) are noticed through SQLite's data_version.
 */
export class TaskScheduler {
  private timer: NodeJS.Timeout | undefined;
  private safetyTimer: NodeJS.Timeout | undefined;
  private externalTimer: NodeJS.Timeout | undefined;
  private running = false;
  private dataVersion = 0;
  /** Queued or running; never enqueued twice. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dataVersion = this.readDataVersion();
    this.closeInterruptedOnceTasks();
    const safetyMs = Math.min(this.deps.safetyCheckMs ?? DEFAULT_SAFETY_CHECK_MS, MAX_TIMER_MS);
    this.safetyTimer = setInterval(() => this.fire(), safetyMs);
    const pollMs = Math.min(this.deps.config.safetyPollMs, MAX_TIMER_MS);
    this.externalTimer = setInterval(() => this.checkExternalChanges(), pollMs);
    // Missed while the host was down: each overdue task is due now and runs once; its next run
    // is then counted from now, so nothing runs once per missed interval.
    this.fire();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.safetyTimer);
    clearInterval(this.externalTimer);
    this.timer = this.safetyTimer = this.externalTimer = undefined;
  }

  /** Re-arms the timer; call after any change to tasks. */
  reschedule(): void {
    if (!this.running) return;
    this.fire();
  }

  /** Task ids queued or running right now. */
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

  /** The run after this one: null for `once`; undefined when the stored schedule is unusable. */
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
      // Re-read: paused or cancelled while it waited in the queue, it doesn't run; updated, it runs as is.
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
    // Re-read: the task may have been paused, updated or cancelled while it ran.
    const current = this.deps.store.tasks.byId(task.id);
    logger.info({ taskId: task.id, status: outcome.status }, 'task run finished');
    if (!current) return;
    const error = outcome.status === 'error' ? (outcome.error ?? 'unknown error') : null;
    const lastResult = error ? `Error: ${error}` : outcome.result ? outcome.result : 'Completed (no output)';
    this.deps.store.tasks.recordRun(
      {
        taskId: task.id,
        runAt: new Date(started).toISOString(),
        durationMs: Math.max(0, this.now() - started),
        status: outcome.status,
        result: outcome.result === null ? null : outcome.result.slice(0, RUN_LOG_CHARS),
        error,
      },
      // A once task has next_run null, so recording the run marks it completed.
      current.nextRun,
      lastResult.slice(0, LAST_RESULT_CHARS),
    );
  }

  /**
   * A `once` task is claimed by clearing its next run before it runs. One still active with no
   * next run and no last run was claimed by a host that stopped before it finished: say so and
   * close it, rather than leave it active forever (it may have partly run; never run it twice).
   */
  private closeInterruptedOnceTasks(): void {
    try {
      for (const task of this.deps.store.tasks.all()) {
        if (task.status !== 'active' || task.scheduleType !== 'once') continue;
        if (task.nextRun !== null || task.lastRun !== null || this.inFlight.has(task.id)) continue;
        const error = 'the host stopped before this run finished';
        this.deps.store.tasks.recordRun(
          {
            taskId: task.id,
            runAt: new Date(this.now()).toISOString(),
            durationMs: 0,
            status: 'error',
            result: null,
            error,
          },
          null,
          `Error: ${error}`,
        );
        logger.warn({ taskId: task.id }, 'once task interrupted by a host stop; closed');
        this.notifyChanged(task.groupFolder);
      }
    } catch (err) {
      logger.error({ err }, 'failed to close interrupted once tasks');
    }
  }

  /** data_version changes only when another connection (the CLI) commits to the database file. */
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
