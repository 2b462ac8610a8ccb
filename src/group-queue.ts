import { logger } from './logger.js';

export interface GroupQueueDeps {
  maxConcurrent: number;
  retryBaseMs: number;
  maxRetries: number;
  /** Retries come up to this share earlier, so groups failing together do not retry in step. */
  jitterRatio?: number;
  /** false or a throw: retry later. */
  processMessages(jid: string): Promise<boolean>;
  writeInput(jid: string, text: string): void;
  writeClose(jid: string): void;
  onGaveUp?(jid: string): void;
}

interface PendingTask {
  id: string;
  run: () => Promise<void>;
}

class GroupState {
  active = false;
  idleWaiting = false;
  runningTaskId: string | null = null;
  pendingMessages = false;
  pendingTasks: PendingTask[] = [];
  retryCount = 0;
  retryTimer: NodeJS.Timeout | undefined;
  /** A warm sandbox still waiting for its first input; `taskId` when started for a due task. */
  warm: { taskId?: string; timer: NodeJS.Timeout } | undefined;
  /** Asked to close: nothing more is piped in. */
  closing = false;
}

/**
 * One sandbox per group, parallel across groups up to a global cap, waiting groups served in
 * order, a group's pending tasks before its pending messages.
 */
export class GroupQueue {
  private readonly groups = new Map<string, GroupState>();
  private readonly waiting: string[] = [];
  private activeCount = 0;
  private shuttingDown = false;
  private readonly idleListeners = new Set<() => void>();

  constructor(private readonly deps: GroupQueueDeps) {}

  private state(jid: string): GroupState {
    let s = this.groups.get(jid);
    if (!s) this.groups.set(jid, (s = new GroupState()));
    return s;
  }

  get runningCount(): number {
    return this.activeCount;
  }

  isActive(jid: string): boolean {
    return this.groups.get(jid)?.active ?? false;
  }

  private busy(s: GroupState): boolean {
    return s.active || this.activeCount >= this.deps.maxConcurrent;
  }

  enqueueMessageCheck(jid: string): void {
    if (this.shuttingDown) return;
    const s = this.state(jid);
    if (!this.busy(s)) return this.startMessages(jid);
    s.pendingMessages = true;
    if (s.warm) this.closeWarm(jid);
    if (!s.active) this.wait(jid);
  }

  /**
   * A sandbox started before its input is known: only into a free slot no real run waits for,
   * closed after `idleMs` without input, and first to close when real work needs the slot.
   */
  startWarm(
    jid: string,
    opts: { idleMs: number; max: number; taskId?: string },
    run: () => Promise<boolean>,
  ): boolean {
    const s = this.state(jid);
    const warm = [...this.groups.values()].filter((g) => g.warm).length;
    if (this.shuttingDown || s.active || s.pendingMessages || s.pendingTasks.length > 0) return false;
    if (this.waiting.length > 0 || this.activeCount >= this.deps.maxConcurrent || warm >= opts.max)
      return false;
    s.warm = {
      ...(opts.taskId && { taskId: opts.taskId }),
      timer: setTimeout(() => this.closeWarm(jid), opts.idleMs),
    };
    this.startMessages(jid, run);
    return true;
  }

  isWarm(jid: string): boolean {
    return this.groups.get(jid)?.warm !== undefined;
  }

  private closeWarm(jid: string): void {
    const s = this.state(jid);
    clearTimeout(s.warm?.timer);
    if (s.closing || !s.active) return;
    s.closing = true;
    this.close(jid);
  }

  enqueueTask(jid: string, taskId: string, run: () => Promise<void>): void {
    if (this.shuttingDown) return;
    const s = this.state(jid);
    if (s.runningTaskId === taskId || s.pendingTasks.some((t) => t.id === taskId)) return;
    if (s.warm?.taskId === taskId && !s.closing) return this.adoptWarm(jid, s, taskId, run);
    if (!this.busy(s)) return this.startTask(jid, { id: taskId, run });
    s.pendingTasks.push({ id: taskId, run });
    // A due task never waits out an idle sandbox's timeout.
    if (s.warm) this.closeWarm(jid);
    else if (s.active && s.idleWaiting) this.close(jid);
    if (!s.active) this.wait(jid);
  }

  /** The task's warm sandbox takes its run (its slot is already counted); closed if the run never uses it. */
  private adoptWarm(jid: string, s: GroupState, taskId: string, run: () => Promise<void>): void {
    clearTimeout(s.warm?.timer);
    s.warm = undefined;
    s.runningTaskId = taskId;
    void run()
      .catch((err) => logger.error({ jid, taskId, err }, 'task run failed'))
      .finally(() => s.runningTaskId === taskId && this.close(jid));
  }

  /** Pipes follow-ups into the group's running message sandbox; false when there is none. */
  sendMessage(jid: string, text: string): boolean {
    const s = this.groups.get(jid);
    if (!s?.active || s.runningTaskId !== null || s.warm?.taskId || s.closing || this.shuttingDown)
      return false;
    try {
      this.deps.writeInput(jid, text);
    } catch (err) {
      // A full disk or a read-only IPC dir: the caller queues a fresh run instead.
      logger.error({ jid, err }, 'cannot pipe message into the running sandbox');
      return false;
    }
    s.idleWaiting = false;
    clearTimeout(s.warm?.timer);
    s.warm = undefined;
    return true;
  }

  notifyIdle(jid: string): void {
    const s = this.state(jid);
    s.idleWaiting = true;
    if (s.pendingTasks.length > 0) this.close(jid);
  }

  closeStdin(jid: string): void {
    if (this.groups.get(jid)?.active) this.close(jid);
  }

  /** If this fails the sandbox still ends at its idle or hard timeout. */
  private close(jid: string): void {
    try {
      this.deps.writeClose(jid);
    } catch (err) {
      logger.error({ jid, err }, 'cannot ask the sandbox to close');
    }
  }

  private wait(jid: string): void {
    if (this.waiting.includes(jid)) return;
    this.waiting.push(jid);
    // Real work never waits behind a warm sandbox.
    const warm = [...this.groups].find(([, g]) => g.warm && !g.closing);
    if (warm) this.closeWarm(warm[0]);
  }

  private begin(jid: string, work: () => Promise<void>): void {
    const s = this.state(jid);
    s.active = true;
    s.idleWaiting = false;
    this.activeCount++;
    void work().then(() => {
      s.active = false;
      s.idleWaiting = false;
      s.runningTaskId = null;
      clearTimeout(s.warm?.timer);
      s.warm = undefined;
      s.closing = false;
      this.activeCount--;
      this.drain(jid);
      if (this.activeCount === 0) for (const listener of this.idleListeners) listener();
    });
  }

  private startMessages(jid: string, work = this.deps.processMessages): void {
    const s = this.state(jid);
    s.pendingMessages = false;
    this.begin(jid, async () => {
      let ok = false;
      try {
        ok = await work(jid);
      } catch (err) {
        logger.error({ jid, err }, 'message run failed');
      }
      if (ok) s.retryCount = 0;
      else this.scheduleRetry(jid, s);
    });
  }

  private startTask(jid: string, task: PendingTask): void {
    this.state(jid).runningTaskId = task.id;
    this.begin(jid, async () => {
      try {
        await task.run();
      } catch (err) {
        logger.error({ jid, taskId: task.id, err }, 'task run failed');
      }
    });
  }

  private scheduleRetry(jid: string, s: GroupState): void {
    if (this.shuttingDown) return;
    if (++s.retryCount > this.deps.maxRetries) {
      logger.error({ jid, retries: this.deps.maxRetries }, 'giving up until the next message');
      s.retryCount = 0;
      this.deps.onGaveUp?.(jid);
      return;
    }
    const jitter = 1 - (this.deps.jitterRatio ?? 0) * Math.random();
    const delay = Math.round(this.deps.retryBaseMs * 2 ** (s.retryCount - 1) * jitter);
    logger.warn({ jid, attempt: s.retryCount, delayMs: delay }, 'run failed, retrying');
    clearTimeout(s.retryTimer);
    s.retryTimer = setTimeout(() => this.enqueueMessageCheck(jid), delay);
  }

  /** A slot is free: the group's own pending work first, then waiting groups. */
  private drain(jid: string): void {
    if (this.shuttingDown) return;
    if (this.startPending(jid)) return;
    while (this.waiting.length > 0 && this.activeCount < this.deps.maxConcurrent) {
      const next = this.waiting.shift()!;
      if (!this.state(next).active) this.startPending(next);
    }
  }

  private startPending(jid: string): boolean {
    const s = this.state(jid);
    const task = s.pendingTasks.shift();
    if (task) this.startTask(jid, task);
    else if (s.pendingMessages) this.startMessages(jid);
    else return false;
    return true;
  }

  /** Stops taking work, asks running sandboxes to finish; true when all did within graceMs. */
  async shutdown(graceMs: number): Promise<boolean> {
    this.shuttingDown = true;
    for (const s of this.groups.values()) clearTimeout(s.retryTimer);
    const active = [...this.groups].filter(([, s]) => s.active).map(([jid]) => jid);
    if (active.length > 0) logger.info({ groups: active, graceMs }, 'asking running sandboxes to finish');
    for (const jid of active) this.close(jid);
    return this.whenIdle(graceMs);
  }

  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.activeCount === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleListeners.delete(onIdle);
        resolve(idle);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.idleListeners.add(onIdle);
    });
  }
}
