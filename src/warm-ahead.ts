import { runAgentForGroup } from './agent-dispatch.js';
import type { Config } from './config.js';
import type { Store } from './db/store.js';
import type { GroupQueue } from './group-queue.js';
import { writeInput } from './ipc/to-agent.js';
import { logger } from './logger.js';
import { formatOutbound, hasTrigger } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { TaskRunOutcome } from './scheduler/task-scheduler.js';
import type { AgentRunner, ScheduledTask } from './types.js';

export interface WarmAheadOptions {
  /** WARM_AHEAD (default true). */
  enabled: boolean;
  /** WARM_IDLE_MS (default 60 000): a warm sandbox with no input by then closes. */
  idleMs: number;
  /** WARM_AHEAD_MAX (default 2). */
  max: number;
  /** WARM_TASK_LEAD_MS (default 5000): how long before its due time a task's sandbox starts. */
  taskLeadMs: number;
  /** WARM_RECENT_DAYS (default 7): a group that triggered this recently warms on chatter after a lull. */
  recentDays: number;
}

export const WARM_AHEAD_DEFAULTS: WarmAheadOptions = {
  enabled: true,
  idleMs: 60_000,
  max: 2,
  taskLeadMs: 5_000,
  recentDays: 7,
};

export interface WarmAheadDeps {
  store: Store;
  config: Pick<Config, 'ipcDir' | 'assistantName'>;
  runner: AgentRunner;
  queue: Pick<GroupQueue, 'startWarm' | 'isActive'>;
  /** The message loop's warm run: its first message arrives as a follow-up. */
  runWarm(jid: string): Promise<boolean>;
  /** A known permanent failure (no key, budget spent): a warm sandbox would only fail too. */
  blocked?(jid: string): boolean;
  send(jid: string, text: string): Promise<unknown>;
}

interface WarmTask {
  taskId: string;
  folder: string;
  outcome: Promise<TaskRunOutcome>;
}

const DAY_MS = 86_400_000;

/**
 * Starts a group's sandbox before its input exists, so Claude Code is already waiting when the
 * message (a follow-up) or the due task's prompt (written at its due time, never earlier) arrives.
 * The person never sees it: no typing, no message, unless real input came.
 */
export class WarmAhead {
  private readonly tasks = new Map<string, WarmTask>();

  constructor(
    private readonly deps: WarmAheadDeps,
    readonly options: WarmAheadOptions = WARM_AHEAD_DEFAULTS,
  ) {}

  get taskLeadMs(): number {
    return this.options.enabled ? this.options.taskLeadMs : 0;
  }

  /** The person is typing in a chat (the chat page, WhatsApp's composing presence). */
  onTyping(jid: string): void {
    if (this.deps.store.groups.byJid(jid)) this.warm(jid, 'typing');
  }

  /** Chatter that did not trigger: warm when the group triggered lately and the chat was quiet. */
  onUntriggered(jid: string): void {
    const { store } = this.deps;
    const group = store.groups.byJid(jid);
    if (!this.options.enabled || !group || this.deps.queue.isActive(jid)) return;
    // The last two messages first: the larger look back runs only after a lull, not per message.
    const [before, latest] = store.messages.history(jid, undefined, 2);
    if (!latest || !before) return;
    if (Date.parse(latest.timestamp) - Date.parse(before.timestamp) < this.options.idleMs) return;
    const since = new Date(Date.now() - this.options.recentDays * DAY_MS).toISOString();
    const recent = store.messages.history(jid, since, 1000);
    if (recent.some((m) => !m.isBotMessage && hasTrigger(m.content, group.trigger))) this.warm(jid, 'lull');
  }

  private warm(jid: string, why: string): void {
    const { enabled, idleMs, max } = this.options;
    if (!enabled || this.deps.queue.isActive(jid) || this.deps.blocked?.(jid)) return;
    if (this.deps.queue.startWarm(jid, { idleMs, max }, () => this.deps.runWarm(jid)))
      logger.info({ jid, why }, 'warm start');
  }

  /** The scheduler: this task falls due within the lead. */
  soonDue(task: ScheduledTask): void {
    const { store, runner, config, send } = this.deps;
    const group = store.groups.byFolder(task.groupFolder);
    if (
      !this.options.enabled ||
      !group ||
      this.deps.queue.isActive(task.chatJid) ||
      this.deps.blocked?.(task.chatJid)
    )
      return;
    let settle!: (outcome: TaskRunOutcome) => void;
    const entry = {
      taskId: task.id,
      folder: group.folder,
      outcome: new Promise<TaskRunOutcome>((r) => (settle = r)),
    };
    const run = async () => {
      let firstResult: string | null = null;
      const output = await runAgentForGroup(
        { store, runner, assistantName: config.assistantName },
        group,
        '',
        {
          chatJid: task.chatJid,
          isScheduledTask: true,
          useGroupSession: task.contextMode === 'group',
          onResult: async (result) => {
            const text = formatOutbound(result.result);
            if (text) await send(task.chatJid, text);
            firstResult ??= result.result;
          },
        },
      );
      if (this.tasks.get(task.chatJid) === entry) this.tasks.delete(task.chatJid);
      settle({
        status: output.status,
        result: firstResult ?? output.result,
        ...(output.error && { error: output.error }),
      });
      return true;
    };
    const { idleMs, max, taskLeadMs } = this.options;
    if (!this.deps.queue.startWarm(task.chatJid, { idleMs: idleMs + taskLeadMs, max, taskId: task.id }, run))
      return;
    this.tasks.set(task.chatJid, entry);
    logger.info({ taskId: task.id, group: group.folder }, 'warm start for a task');
  }

  /** The due task's run, in its warm sandbox; undefined when it has none (a cold run then). */
  runTask(task: ScheduledTask): Promise<TaskRunOutcome> | undefined {
    const entry = this.tasks.get(task.chatJid);
    if (entry?.taskId !== task.id) return undefined;
    this.tasks.delete(task.chatJid);
    try {
      writeInput(this.deps.config, entry.folder, formatTaskPrompt(task));
    } catch (err) {
      // Its slot is the warm sandbox's: a second sandbox must not start beside it.
      const error = `cannot hand the task to its sandbox: ${String(err)}`;
      return Promise.resolve({ status: 'error', result: null, error });
    }
    return entry.outcome;
  }
}
