import type { Config } from '../config.js';
import { computeNextRun } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import { logger } from '../logger.js';
import type { AgentOutput, ScheduledTask } from '../types.js';

export type TaskRunOutcome = Omit<AgentOutput, 'newSessionId'>;
type Run = (task: ScheduledTask) => Promise<TaskRunOutcome>;

export interface SchedulerDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'safetyPollMs'>;
  queue: { enqueueTask(chatJid: string, taskId: string, run: () => Promise<void>): void };
  runTask: Run;
  onTasksChanged(groupFolder: string): void;
  warm?: {
    taskLeadMs: number;
    soonDue(task: ScheduledTask): void;
    runTask(task: ScheduledTask): ReturnType<Run> | undefined;
  };
}

function guard(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, `scheduler failed: ${what}`);
  }
}

/** One timer for the earliest run; the poll catches clock jumps and the CLI's commits (data_version). */
export class TaskScheduler {
  private timer?: NodeJS.Timeout;
  private poll?: NodeJS.Timeout;
  private running = false;
  private dataVersion = 0;
  readonly inFlight = new Set<string>();
  private readonly warmed = new Set<string>(); // `<id> <nextRun>`

  constructor(private readonly deps: SchedulerDeps) {}

  private version = () => this.deps.store.db.pragma('data_version', { simple: true }) as number;

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dataVersion = this.version();
    const { store, config } = this.deps;
    // A `once` task claimed by a stopped host is closed, never rerun.
    guard('closing interrupted once tasks', () => {
      for (const t of store.tasks.all())
        if (t.status === 'active' && t.scheduleType === 'once' && !t.nextRun && !t.lastRun)
          this.record(t, Date.now(), {
            status: 'error',
            result: null,
            error: 'the host stopped during the run',
          });
    });
    this.poll = setInterval(() => {
      guard('polling', () => {
        if (this.version() === this.dataVersion) return;
        this.dataVersion = this.version();
        store.groups.all().forEach((g) => this.changed(g.folder));
      });
      this.reschedule();
    }, config.safetyPollMs);
    this.reschedule();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.poll);
  }

  reschedule(): void {
    if (!this.running) return;
    guard('claiming due tasks', () => this.claimDueTasks());
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    guard('reading the next due task', () => {
      // Due by 9999: every active task.
      const upcoming = this.deps.store.tasks.due('9999').filter((task) => !this.inFlight.has(task.id));
      if (!this.running || !upcoming[0]) return;
      const at = Math.min(Date.parse(upcoming[0].nextRun!), this.warmSoonDue(upcoming));
      // Node fires a longer or negative delay at once.
      this.timer = setTimeout(() => this.reschedule(), Math.min(at - Date.now(), 2 ** 31 - 1));
    });
  }

  /** Returns when the next task enters the warm-ahead lead. */
  private warmSoonDue(upcoming: ScheduledTask[]): number {
    const { warm } = this.deps;
    for (const task of warm?.taskLeadMs ? upcoming : []) {
      const due = Date.parse(task.nextRun!);
      if (due - warm!.taskLeadMs > Date.now()) return due - warm!.taskLeadMs;
      const key = `${task.id} ${task.nextRun}`;
      if (due <= Date.now() || this.warmed.has(key)) continue;
      this.warmed.add(key);
      guard('warm-ahead', () => warm!.soonDue(task));
    }
    return Infinity;
  }

  private claimDueTasks(): void {
    const { store, config, queue } = this.deps;
    const now = new Date();
    for (const task of store.tasks.due(now.toISOString())) {
      const { id, scheduleType: type } = task;
      if (this.inFlight.has(id)) continue;
      const next =
        type === 'once'
          ? null
          : computeNextRun(type, task.scheduleValue, { from: now, timezone: config.timezone });
      if (typeof next === 'object' && next) {
        logger.warn({ taskId: id, error: next.error }, 'task schedule unusable; pausing task');
        store.tasks.update(id, { status: 'paused' });
      } else {
        // Persisted before the run, so a crash mid-run doesn't run an interval task twice.
        store.tasks.update(id, { nextRun: next });
        this.warmed.delete(`${id} ${task.nextRun}`);
        this.inFlight.add(id);
        logger.info({ taskId: id, nextRun: next }, 'task due');
        queue.enqueueTask(task.chatJid, id, () => this.execute(id));
      }
      this.changed(task.groupFolder);
    }
  }

  private async execute(id: string): Promise<void> {
    const { store, warm, runTask } = this.deps;
    try {
      const task = store.tasks.byId(id);
      if (task?.status !== 'active') return; // paused or cancelled while queued
      const started = Date.now();
      const outcome = await (warm?.runTask(task) ?? runTask(task)).catch((err: Error): TaskRunOutcome => ({
        status: 'error',
        result: null,
        error: err.message,
      }));
      this.record(task, started, outcome);
    } catch (err) {
      logger.error({ err, taskId: id }, 'failed to record task run');
    } finally {
      this.inFlight.delete(id);
      // Armed, not claimed here: the queue ignores a task enqueued while its last run is still ending.
      this.arm();
    }
  }

  private record(
    { id, groupFolder }: ScheduledTask,
    started: number,
    { status, result, error }: TaskRunOutcome,
  ) {
    logger.info({ taskId: id, status }, 'task run finished');
    this.deps.store.tasks.recordRun({
      taskId: id,
      runAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      status,
      result: result?.slice(0, 10_000) ?? null,
      error: status === 'error' ? (error ?? 'unknown error') : null,
    });
    this.changed(groupFolder);
  }

  private changed = (folder: string) =>
    guard(`onTasksChanged(${folder})`, () => this.deps.onTasksChanged(folder));
}
