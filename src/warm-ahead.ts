import { runTaskInSandbox } from './agent-dispatch.js';
import type { Config } from './config.js';
import type { Store } from './db/store.js';
import type { GroupQueue } from './group-queue.js';
import { writeInput } from './ipc/to-agent.js';
import { hasTrigger } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { TaskRunOutcome } from './scheduler/task-scheduler.js';
import type { AgentRunner, ScheduledTask } from './types.js';

export const WARM_AHEAD_DEFAULTS = {
  enabled: true,
  idleMs: 60_000,
  max: 2,
  taskLeadMs: 5_000,
  recentDays: 7,
};
export type WarmAheadOptions = typeof WARM_AHEAD_DEFAULTS;

/** Starts a group's sandbox before its message or due task arrives; unseen unless input came. */
export class WarmAhead {
  private readonly tasks = new Map<string, { task: ScheduledTask; outcome: Promise<TaskRunOutcome> }>();

  constructor(
    private readonly deps: {
      store: Store;
      config: Pick<Config, 'ipcDir' | 'assistantName'>;
      runner: AgentRunner;
      queue: Pick<GroupQueue, 'startWarm' | 'isActive'>;
      runWarm(jid: string): Promise<boolean>;
      blocked?(jid: string): boolean;
      send(jid: string, text: string): Promise<unknown>;
    },
    readonly options: WarmAheadOptions,
  ) {}

  get taskLeadMs() {
    return this.options.enabled ? this.options.taskLeadMs : 0;
  }

  private may = (jid: string) =>
    this.options.enabled && !this.deps.queue.isActive(jid) && !this.deps.blocked?.(jid);

  onTyping(jid: string) {
    if (this.deps.store.groups.byJid(jid)) this.warm(jid);
  }

  /** Chatter that did not trigger: warm after a lull when the group triggered lately. */
  onUntriggered(jid: string) {
    const { store } = this.deps;
    const group = store.groups.byJid(jid);
    if (!group || !this.may(jid)) return;
    const [before, latest] = store.messages.history(jid, undefined, 2);
    if (!before || Date.parse(latest!.timestamp) - Date.parse(before.timestamp) < this.options.idleMs) return;
    const since = new Date(Date.now() - this.options.recentDays * 86_400_000).toISOString();
    const recent = store.messages.history(jid, since, 1000);
    if (recent.some((m) => !m.isBotMessage && hasTrigger(m.content, group.trigger))) this.warm(jid);
  }

  private warm(jid: string) {
    const { idleMs, max } = this.options;
    if (this.may(jid)) this.deps.queue.startWarm(jid, { idleMs, max }, () => this.deps.runWarm(jid));
  }

  soonDue(task: ScheduledTask) {
    const { store, runner, config, send, queue } = this.deps;
    const jid = task.chatJid;
    if (!store.groups.byFolder(task.groupFolder) || !this.may(jid)) return;
    let settle!: (outcome: TaskRunOutcome) => void;
    const entry = { task, outcome: new Promise<TaskRunOutcome>((r) => (settle = r)) };
    const run = async () => {
      settle(await runTaskInSandbox({ ...config, store, runner, send }, task, ''));
      if (this.tasks.get(jid) === entry) this.tasks.delete(jid);
      return true;
    };
    const { idleMs, max, taskLeadMs } = this.options;
    if (queue.startWarm(jid, { idleMs: idleMs + taskLeadMs, max, taskId: task.id }, run))
      this.tasks.set(jid, entry);
  }

  runTask(task: ScheduledTask): Promise<TaskRunOutcome> | undefined {
    const entry = this.tasks.get(task.chatJid);
    if (entry?.task.id !== task.id) return undefined;
    this.tasks.delete(task.chatJid);
    try {
      writeInput(this.deps.config, task.groupFolder, formatTaskPrompt(task));
    } catch (err) {
      // Its slot is the warm sandbox's: a second sandbox must not start beside it.
      const error = `cannot hand the task over: ${String(err)}`;
      return Promise.resolve({ status: 'error', result: null, error });
    }
    return entry.outcome;
  }
}
