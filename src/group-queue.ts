import { logFailure, logger } from './logger.js';

export type GroupQueueDeps = {
  maxConcurrentContainers: number;
  retryBaseMs: number;
  maxRetries: number;
  jitterRatio?: number;
  processMessages(jid: string): Promise<boolean>;
  writeInput(jid: string, text: string): void;
  writeClose(jid: string): void;
  onGaveUp?(jid: string): void;
};

type Task = { id: string; run: () => Promise<void> };

class Group {
  active = false;
  idleWaiting = false;
  closing = false;
  pendingMessages = false;
  taskId: string | null = null;
  tasks: Task[] = [];
  retries = 0;
  retryTimer?: NodeJS.Timeout;
  warm?: { taskId?: string | undefined; timer: NodeJS.Timeout };
  constructor(readonly jid: string) {}
}

/** One sandbox per group, up to a global cap; waiting groups in order, a group's tasks before its messages. */
export class GroupQueue {
  private readonly groups = new Map<string, Group>();
  private readonly waiting: Group[] = [];
  private readonly idle: (() => void)[] = [];
  private shuttingDown = false;
  runningCount = 0;

  constructor(private readonly deps: GroupQueueDeps) {}

  private group = (jid: string) => this.groups.get(jid) ?? this.groups.set(jid, new Group(jid)).get(jid)!;
  private all = () => [...this.groups.values()];
  private full = () => this.runningCount >= this.deps.maxConcurrentContainers;
  isActive = (jid: string) => !!this.groups.get(jid)?.active;
  isWarm = (jid: string) => !!this.groups.get(jid)?.warm;

  enqueueMessageCheck(jid: string) {
    if (this.shuttingDown) return;
    const g = this.group(jid);
    if (!g.active && !this.full()) return this.startMessages(g);
    g.pendingMessages = true;
    if (g.warm) this.closeWarm(g);
    if (!g.active) this.wait(g);
  }

  /** Only into a free slot no real run waits for; first to close when real work needs the slot. */
  startWarm(jid: string, o: { idleMs: number; max: number; taskId?: string }, run: () => Promise<boolean>) {
    const g = this.group(jid);
    if (this.shuttingDown || g.active || g.pendingMessages || g.tasks.length || this.waiting.length)
      return false;
    if (this.full() || this.all().filter((w) => w.warm).length >= o.max) return false;
    g.warm = { taskId: o.taskId, timer: setTimeout(() => this.closeWarm(g), o.idleMs) };
    this.startMessages(g, run);
    return true;
  }

  private closeWarm(g: Group) {
    clearTimeout(g.warm?.timer);
    if (!g.closing && g.active) this.close(Object.assign(g, { closing: true }));
  }

  enqueueTask(jid: string, id: string, run: () => Promise<void>) {
    if (this.shuttingDown) return;
    const g = this.group(jid);
    if (g.taskId === id || g.tasks.some((t) => t.id === id)) return;
    if (g.warm?.taskId === id && !g.closing) {
      // The task's warm sandbox takes its run (its slot is already counted); closed if the run never uses it.
      clearTimeout(g.warm.timer);
      g.warm = undefined;
      g.taskId = id;
      void this.runTask(g, { id, run }).finally(() => g.taskId === id && this.close(g));
      return;
    }
    if (!g.active && !this.full()) return this.startTask(g, { id, run });
    g.tasks.push({ id, run });
    // A due task never waits out an idle sandbox's timeout.
    if (g.warm) this.closeWarm(g);
    else if (g.active && g.idleWaiting) this.close(g);
    if (!g.active) this.wait(g);
  }

  sendMessage(jid: string, text: string) {
    const g = this.groups.get(jid);
    if (!g?.active || g.taskId !== null || g.warm?.taskId || g.closing || this.shuttingDown) return false;
    try {
      this.deps.writeInput(jid, text);
    } catch (err) {
      logger.error({ jid, err }, 'cannot pipe message into the running sandbox'); // err.code tells why
      return false;
    }
    g.idleWaiting = false;
    clearTimeout(g.warm?.timer);
    g.warm = undefined;
    return true;
  }

  notifyIdle(jid: string) {
    const g = this.group(jid);
    g.idleWaiting = true;
    if (g.tasks.length > 0) this.close(g);
  }

  closeStdin(jid: string) {
    const g = this.groups.get(jid);
    if (g?.active) this.close(g);
  }

  private close = ({ jid }: Group) =>
    logFailure('cannot ask the sandbox to close', { jid }, () => this.deps.writeClose(jid), 'error');

  private wait(g: Group) {
    if (this.waiting.includes(g)) return;
    this.waiting.push(g);
    // Real work never waits behind a warm sandbox.
    const warm = this.all().find((w) => w.warm && !w.closing);
    if (warm) this.closeWarm(warm);
  }

  private begin(g: Group, work: () => Promise<void>) {
    g.active = true;
    g.idleWaiting = false;
    this.runningCount++;
    void work().then(() => {
      clearTimeout(g.warm?.timer);
      Object.assign(g, { active: false, idleWaiting: false, taskId: null, warm: undefined, closing: false });
      this.runningCount--;
      if (!this.shuttingDown && !this.startPending(g))
        while (this.waiting.length > 0 && !this.full()) {
          const next = this.waiting.shift()!;
          if (!next.active) this.startPending(next);
        }
      if (this.runningCount === 0) for (const done of this.idle.splice(0)) done();
    });
  }

  private startMessages(g: Group, work = this.deps.processMessages) {
    g.pendingMessages = false;
    this.begin(g, async () => {
      const ok = await work(g.jid).catch((err: unknown) =>
        logger.error({ jid: g.jid, err }, 'message run failed'),
      );
      if (ok) g.retries = 0;
      else this.retry(g);
    });
  }

  private runTask = ({ jid }: Group, task: Task) =>
    task.run().catch((err: unknown) => logger.error({ jid, taskId: task.id, err }, 'task run failed'));

  private startTask(g: Group, task: Task) {
    g.taskId = task.id;
    this.begin(g, () => this.runTask(g, task));
  }

  private retry(g: Group) {
    if (this.shuttingDown) return;
    const { maxRetries, retryBaseMs, jitterRatio = 0 } = this.deps;
    if (++g.retries > maxRetries) {
      g.retries = 0;
      return this.deps.onGaveUp?.(g.jid);
    }
    const delay = Math.round(retryBaseMs * 2 ** (g.retries - 1) * (1 - jitterRatio * Math.random()));
    clearTimeout(g.retryTimer);
    g.retryTimer = setTimeout(() => this.enqueueMessageCheck(g.jid), delay);
  }

  private startPending(g: Group) {
    const task = g.tasks.shift();
    if (task) this.startTask(g, task);
    else if (g.pendingMessages) this.startMessages(g);
    else return false;
    return true;
  }

  async shutdown(graceMs: number) {
    this.shuttingDown = true;
    if (this.runningCount > 0) logger.info({ graceMs }, 'asking running sandboxes to finish');
    for (const g of this.all()) {
      clearTimeout(g.retryTimer);
      if (g.active) this.close(g);
    }
    return this.whenIdle(graceMs);
  }

  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.runningCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idle.push(() => resolve(true) ?? clearTimeout(timer));
    });
  }
}
