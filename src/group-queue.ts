import { logger } from './logger.js';

/** What the queue needs from the rest of the host. */
export interface GroupQueueDeps {
  maxConcurrent: number;
  /** Runs an agent over the group's pending messages; false (or a throw) means "retry later". */
  processMessages(groupJid: string): Promise<boolean>;
  /** Pipes text into the group's running sandbox (an IPC input file). */
  writeInput(groupJid: string, text: string): void;
  /** Asks the group's running sandbox to finish (the `_close` sentinel). */
  writeClose(groupJid: string): void;
  /** Called once a group has failed maxRetries times in a row; it then waits for the next message. */
  onGaveUp?(groupJid: string): void;
  retryBaseMs: number;
  maxRetries: number;
}

interface PendingTask {
  id: string;
  run: () => Promise<void>;
}

interface GroupState {
  active: boolean;
  /** The running sandbox has answered and waits for follow-ups. */
  idleWaiting: boolean;
  runningTaskId: string | null;
  pendingMessages: boolean;
  pendingTasks: PendingTask[];
  retryCount: number;
  retryTimer: NodeJS.Timeout | null;
}

/**
 * One sandbox per group at a time, FIFO within a group, parallel across groups up to a global cap.
 * Pending tasks go before pending messages. Messages for a group whose sandbox is running are piped
 * into it instead of starting another.
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
    if (!s) {
      s = {
        active: false,
        idleWaiting: false,
        runningTaskId: null,
        pendingMessages: false,
        pendingTasks: [],
        retryCount: 0,
        retryTimer: null,
      };
      this.groups.set(jid, s);
    }
    return s;
  }

  get runningCount(): number {
    return this.activeCount;
  }

  isActive(jid: string): boolean {
    return this.groups.get(jid)?.active ?? false;
  }

  /** New messages arrived for the group: run an agent now, or as soon as the group / a slot is free. */
  enqueueMessageCheck(jid: string): void {
    if (this.shuttingDown) return;
    const s = this.state(jid);
    if (s.active || this.activeCount >= this.deps.maxConcurrent) {
      s.pendingMessages = true;
      if (!s.active) this.wait(jid);
      return;
    }
    this.startMessages(jid);
  }

  enqueueTask(jid: string, taskId: string, run: () => Promise<void>): void {
    if (this.shuttingDown) return;
    const s = this.state(jid);
    if (s.runningTaskId === taskId || s.pendingTasks.some((t) => t.id === taskId)) return;
    if (s.active || this.activeCount >= this.deps.maxConcurrent) {
      s.pendingTasks.push({ id: taskId, run });
      // A due task never waits out an idle sandbox's timeout: ask it to finish now.
      if (s.active && s.idleWaiting) this.close(jid);
      if (!s.active) this.wait(jid);
      return;
    }
    this.startTask(jid, { id: taskId, run });
  }

  /**
   * Pipes follow-up text into the group's running message sandbox. Returns false when there is no
   * such sandbox (then the caller enqueues a message check instead).
   */
  sendMessage(jid: string, text: string): boolean {
    const s = this.groups.get(jid);
    if (!s?.active || s.runningTaskId !== null || this.shuttingDown) return false;
    try {
      this.deps.writeInput(jid, text);
    } catch (err) {
      // A full disk or a read-only IPC dir: the caller queues a fresh run for after this one.
      logger.error({ jid, err }, 'cannot pipe message into the running sandbox');
      return false;
    }
    s.idleWaiting = false;
    return true;
  }

  /** The group's sandbox delivered a result and now waits for input. */
  notifyIdle(jid: string): void {
    const s = this.state(jid);
    s.idleWaiting = true;
    if (s.pendingTasks.length > 0) this.close(jid);
  }

  closeStdin(jid: string): void {
    if (this.groups.get(jid)?.active) this.close(jid);
  }

  /** Asks the sandbox to finish; if that fails it still ends at its idle or hard timeout. */
  private close(jid: string): void {
    try {
      this.deps.writeClose(jid);
    } catch (err) {
      logger.error({ jid, err }, 'cannot ask the sandbox to close');
    }
  }

  private wait(jid: string): void {
    if (!this.waiting.includes(jid)) this.waiting.push(jid);
  }

  private begin(s: GroupState): void {
    s.active = true;
    s.idleWaiting = false;
    this.activeCount++;
  }

  private end(jid: string, s: GroupState): void {
    s.active = false;
    s.idleWaiting = false;
    s.runningTaskId = null;
    this.activeCount--;
    this.drain(jid);
    if (this.activeCount === 0) for (const listener of this.idleListeners) listener();
  }

  private startMessages(jid: string): void {
    const s = this.state(jid);
    this.begin(s);
    s.pendingMessages = false;
    void (async () => {
      let ok = false;
      try {
        ok = await this.deps.processMessages(jid);
      } catch (err) {
        logger.error({ jid, err }, 'message run failed');
      }
      if (ok) s.retryCount = 0;
      else this.scheduleRetry(jid, s);
      this.end(jid, s);
    })();
  }

  private startTask(jid: string, task: PendingTask): void {
    const s = this.state(jid);
    this.begin(s);
    s.runningTaskId = task.id;
    void (async () => {
      try {
        await task.run();
      } catch (err) {
        logger.error({ jid, taskId: task.id, err }, 'task run failed');
      }
      this.end(jid, s);
    })();
  }

  /** Retries after 5, 10, 20, 40, 80 s (with the default base), then waits for the next message. */
  private scheduleRetry(jid: string, s: GroupState): void {
    if (this.shuttingDown) return;
    s.retryCount++;
    if (s.retryCount > this.deps.maxRetries) {
      logger.error({ jid, retries: this.deps.maxRetries }, 'giving up until the next message');
      s.retryCount = 0;
      this.deps.onGaveUp?.(jid);
      return;
    }
    const delay = this.deps.retryBaseMs * 2 ** (s.retryCount - 1);
    logger.warn({ jid, attempt: s.retryCount, delayMs: delay }, 'run failed, retrying');
    if (s.retryTimer) clearTimeout(s.retryTimer);
    s.retryTimer = setTimeout(() => {
      s.retryTimer = null;
      this.enqueueMessageCheck(jid);
    }, delay);
  }

  /** The group's slot is free: its own pending work first (tasks before messages), then other groups. */
  private drain(jid: string): void {
    if (this.shuttingDown) return;
    const s = this.state(jid);
    const task = s.pendingTasks.shift();
    if (task) return this.startTask(jid, task);
    if (s.pendingMessages) return this.startMessages(jid);
    while (this.waiting.length > 0 && this.activeCount < this.deps.maxConcurrent) {
      const next = this.waiting.shift()!;
      const ns = this.state(next);
      if (ns.active) continue;
      const nextTask = ns.pendingTasks.shift();
      if (nextTask) this.startTask(next, nextTask);
      else if (ns.pendingMessages) this.startMessages(next);
    }
  }

  /**
   * Stops taking work, asks every running sandbox to finish, and waits up to graceMs for them.
   * Resolves true when all finished in time.
   */
  async shutdown(graceMs: number): Promise<boolean> {
    this.shuttingDown = true;
    for (const s of this.groups.values()) if (s.retryTimer) clearTimeout(s.retryTimer);
    const active = [...this.groups].filter(([, s]) => s.active).map(([jid]) => jid);
    if (active.length > 0) logger.info({ groups: active, graceMs }, 'asking running sandboxes to finish');
    for (const jid of active) this.close(jid);
    return this.whenIdle(graceMs);
  }

  /** Resolves true once no run is active, or false after timeoutMs. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.activeCount === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.idleListeners.delete(done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.idleListeners.delete(done);
        resolve(true);
      };
      this.idleListeners.add(done);
    });
  }
}
