import { runAgentForGroup } from './agent-dispatch.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import type { StoredMessage } from './db/message-repo.js';
import type { Store } from './db/store.js';
import { failure, type FailureNotices } from './failure-notice.js';
import { GroupQueue } from './group-queue.js';
import { writeClose, writeInput } from './ipc/to-agent.js';
import { logger } from './logger.js';
import { formatMessages, formatOutbound, hasTrigger, isAssistantEcho } from './router.js';
import type { AgentRunner, RegisteredGroup } from './types.js';

export interface MessageLoopDeps {
  store: Store;
  config: Config;
  runner: AgentRunner;
  send(jid: string, text: string): Promise<unknown>;
  setTyping(jid: string, isTyping: boolean): Promise<void>;
  mayTrigger?(group: RegisteredGroup, message: StoredMessage): boolean;
  /** Warm-ahead may start the group's sandbox. */
  onUntriggered?(jid: string): void;
  failures?: Pick<FailureNotices, 'gate' | 'onRunFailed' | 'onRunSucceeded' | 'onGaveUp'>;
}

const SEEN_KEY = 'last_seen_seq';
const PAGE = 1000;
const agentKey = (jid: string) => `agent_seq:${jid}`;
/** During a run, the cursor a failure rolls back to; in SQLite, so it survives a killed host. */
const runKey = (jid: string) => `agent_run:${jid}`;

/** Non-trigger messages stay behind the agent cursor: context for the next trigger. */
export class MessageLoop {
  readonly queue: GroupQueue;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private running = false;

  constructor(private readonly deps: MessageLoopDeps) {
    const { config, store } = deps;
    // Only a plain folder name is ever joined into an IPC path.
    const inFolder = (jid: string, fn: (folder: string) => void) => {
      const folder = store.groups.byJid(jid)?.folder;
      if (folder !== undefined && isValidFolder(folder)) fn(folder);
    };
    this.queue = new GroupQueue({
      maxConcurrent: config.maxConcurrentContainers,
      retryBaseMs: config.retryBaseMs,
      maxRetries: config.maxRetries,
      jitterRatio: 0.2,
      processMessages: (jid) => this.run(jid),
      writeInput: (jid, text) => inFolder(jid, (folder) => writeInput(config, folder, text)),
      writeClose: (jid) => inFolder(jid, (folder) => writeClose(config, folder)),
      onGaveUp: (jid) => void deps.failures?.onGaveUp(jid),
    });
  }

  start(): void {
    this.running = true;
    this.recoverPending();
    this.timer = setInterval(() => this.checkNow(), this.deps.config.safetyPollMs).unref();
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
  }

  notify(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => this.checkNow());
  }

  private checkNow(): void {
    this.scheduled = false;
    if (!this.running) return;
    try {
      this.checkNewMessages();
    } catch (err) {
      logger.error({ err }, 'message check failed');
    }
  }

  private read(key: string): number | undefined {
    const value = this.deps.store.state.get(key);
    return value ? Number(value) : undefined;
  }

  private write(key: string, seq?: number): void {
    this.deps.store.state.set(key, seq === undefined ? '' : String(seq));
  }

  private cursor(jid: string): number {
    return this.read(agentKey(jid)) ?? 0;
  }

  /** Output of the group's message run reached a chat: what it was given is never run again. */
  markAnswered(jid: string): void {
    if (this.read(runKey(jid)) !== undefined) this.write(runKey(jid), this.cursor(jid));
  }

  private triggered(group: RegisteredGroup, messages: StoredMessage[]): boolean {
    const allowed = messages.filter((m) => this.deps.mayTrigger?.(group, m) ?? true);
    return group.isMain || !group.requiresTrigger
      ? allowed.length > 0
      : allowed.some((m) => hasTrigger(m.content, group.trigger));
  }

  private real(messages: StoredMessage[]): StoredMessage[] {
    return messages.filter((m) => !isAssistantEcho(m, this.deps.config.assistantName));
  }

  private pending(jid: string) {
    const all = this.deps.store.messages.newSince([jid], this.cursor(jid), 500);
    return { messages: this.real(all), lastSeq: all.at(-1)?.seq ?? this.cursor(jid) };
  }

  checkNewMessages(): void {
    // A backlog bigger than one page is routed now, not a page per poll.
    while (this.routePage() === PAGE);
  }

  private routePage(): number {
    const { store } = this.deps;
    const groups = new Map(store.groups.all().map((g) => [g.jid, g]));
    const fresh = store.messages.newSince([...groups.keys()], this.read(SEEN_KEY) ?? 0, PAGE);
    if (fresh.length === 0) return 0;
    this.write(SEEN_KEY, fresh.at(-1)!.seq);
    for (const jid of new Set(fresh.map((m) => m.chatJid))) {
      const messages = this.real(fresh.filter((m) => m.chatJid === jid));
      if (!this.triggered(groups.get(jid)!, messages)) {
        if (messages.length > 0) this.deps.onUntriggered?.(jid);
        continue;
      }
      // A sandbox already running for this group takes the messages as a follow-up.
      const pending = this.pending(jid);
      if (pending.messages.length > 0 && this.queue.sendMessage(jid, formatMessages(pending.messages))) {
        this.write(agentKey(jid), pending.lastSeq);
        void this.deps.setTyping(jid, true).catch(() => undefined);
      } else this.queue.enqueueMessageCheck(jid);
    }
    return fresh.length;
  }

  private recoverPending(): void {
    for (const group of this.deps.store.groups.all()) {
      const { jid, folder } = group;
      const to = this.read(runKey(jid));
      if (to !== undefined) {
        if (this.cursor(jid) > to) {
          logger.warn(
            { group: folder, from: this.cursor(jid), to },
            'rolling back a run interrupted by a host stop',
          );
          this.write(agentKey(jid), to);
        }
        this.write(runKey(jid));
      }
      const { messages } = this.pending(jid);
      if (messages.length > 0 && this.triggered(group, messages)) {
        logger.info({ group: folder, count: messages.length }, 'recovering unprocessed messages');
        this.queue.enqueueMessageCheck(jid);
      }
    }
  }

  runWarm(jid: string): Promise<boolean> {
    return this.run(jid, true);
  }

  /**
   * The queue's worker for one group. The cursor is advanced before the run and rolled back if it
   * fails, but only to the last message that got an answer: a partial answer beats a duplicate.
   */
  private async run(jid: string, warm = false): Promise<boolean> {
    const { store, runner, config, failures } = this.deps;
    const group = store.groups.byJid(jid);
    if (!group) return true;
    const before = this.cursor(jid);
    const { messages, lastSeq } = this.pending(jid);
    if (!warm && (messages.length === 0 || !this.triggered(group, messages))) return true;
    // A permanent cause that still holds: the person is told, no sandbox starts, nothing retries.
    let newest = messages.at(-1)?.seq ?? 0;
    if (!warm && (await failures?.gate(jid, group.folder, newest))) return true;

    const typing = (on: boolean) => this.deps.setTyping(jid, on).catch(() => undefined);
    this.write(runKey(jid), before);
    if (!warm) {
      this.write(agentKey(jid), lastSeq);
      await typing(true);
    }
    const { assistantName } = config;
    const output = await runAgentForGroup(
      { store, runner, assistantName },
      group,
      warm ? '' : formatMessages(messages),
      {
        chatJid: jid,
        useGroupSession: true,
        onResult: async ({ result, status }) => {
          const text = formatOutbound(result);
          // Marked before sending: a host dying in between loses the answer rather than repeats it.
          if (text || status === 'success') this.markAnswered(jid);
          if (text) await this.deps.send(jid, text);
          if (status === 'success') {
            await typing(false);
            this.queue.notifyIdle(jid);
          }
        },
      },
    );
    // The person never sees a warm start that got no message.
    const given = this.cursor(jid) > before;
    if (given) await typing(false);
    if (warm) newest = this.cursor(jid);

    const rollbackTo = this.read(runKey(jid)) ?? before;
    this.write(runKey(jid));
    const unanswered = this.cursor(jid) > rollbackTo;
    const log = { group: group.folder, error: output.error, rolledBackTo: rollbackTo };
    if (output.status === 'error') {
      if (!unanswered) {
        logger.warn(log, 'run failed after its output was sent; not retrying');
        return true;
      }
      this.write(agentKey(jid), rollbackTo);
      const why = output.failure ?? failure('unknown');
      const permanent = why.kind === 'permanent';
      logger.warn(
        { ...log, cause: why.cause },
        `run failed; messages ${permanent ? 'wait' : 'will be retried'}`,
      );
      void failures?.onRunFailed(jid, group.folder, why, newest);
      return permanent;
    }
    if (unanswered && (rollbackTo > before || warm)) {
      // Follow-ups piped in while the sandbox was closing were never read: run them again.
      logger.info(log, 'follow-ups left unread; running them');
      this.write(agentKey(jid), rollbackTo);
      this.queue.enqueueMessageCheck(jid);
    }
    if (given) failures?.onRunSucceeded(jid);
    return true;
  }
}
