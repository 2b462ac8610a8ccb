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
  /** New messages in a group that did not trigger a run (warm-ahead may start its sandbox). */
  onUntriggered?(jid: string): void;
  failures?: Pick<FailureNotices, 'gate' | 'onRunFailed' | 'onRunSucceeded' | 'onGaveUp'>;
}

const SEEN_KEY = 'last_seen_seq';
const ROUTE_PAGE = 1000;
const agentKey = (jid: string) => `agent_seq:${jid}`;
/** During a run, the cursor a failure rolls back to; in SQLite, so it survives a killed host. */
const runKey = (jid: string) => `agent_run:${jid}`;

/**
 * Stored messages → agent runs. Two cursors: what the loop has seen, and per group what an agent
 * has processed. Non-trigger messages stay behind the agent cursor: context for the next trigger.
 */
export class MessageLoop {
  readonly queue: GroupQueue;
  private pollTimer: NodeJS.Timeout | undefined;
  private checkScheduled = false;
  private running = false;

  constructor(private readonly deps: MessageLoopDeps) {
    const { config, store } = deps;
    // Only a plain folder name is ever joined into an IPC path.
    const withFolder = (jid: string, fn: (folder: string) => void) => {
      const folder = store.groups.byJid(jid)?.folder;
      if (folder !== undefined && isValidFolder(folder)) fn(folder);
    };
    this.queue = new GroupQueue({
      maxConcurrent: config.maxConcurrentContainers,
      retryBaseMs: config.retryBaseMs,
      maxRetries: config.maxRetries,
      jitterRatio: 0.2,
      processMessages: (jid) => this.processGroupMessages(jid),
      writeInput: (jid, text) => withFolder(jid, (folder) => writeInput(config, folder, text)),
      writeClose: (jid) => withFolder(jid, (folder) => writeClose(config, folder)),
      onGaveUp: (jid) => void deps.failures?.onGaveUp(jid),
    });
  }

  start(): void {
    this.running = true;
    this.recoverPending();
    this.pollTimer = setInterval(() => this.checkNow(), this.deps.config.safetyPollMs).unref();
  }

  stop(): void {
    this.running = false;
    clearInterval(this.pollTimer);
  }

  /** A message was stored: route it at once (coalesced). */
  notify(): void {
    if (this.checkScheduled || !this.running) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.checkNow();
    });
  }

  private checkNow(): void {
    if (!this.running) return;
    try {
      this.checkNewMessages();
    } catch (err) {
      logger.error({ err }, 'message check failed');
    }
  }

  private agentCursor(jid: string): number {
    return Number(this.deps.store.state.get(agentKey(jid)) ?? 0);
  }

  private rollbackPoint(jid: string): number | undefined {
    const value = this.deps.store.state.get(runKey(jid));
    return value ? Number(value) : undefined;
  }

  private write(key: string, seq: number | undefined): void {
    this.deps.store.state.set(key, seq === undefined ? '' : String(seq));
  }

  /** Output of the group's message run reached a chat: what it was given is never run again. */
  markAnswered(jid: string): void {
    if (this.rollbackPoint(jid) !== undefined) this.write(runKey(jid), this.agentCursor(jid));
  }

  private isTriggered(group: RegisteredGroup, messages: StoredMessage[]): boolean {
    const allowed = messages.filter((m) => this.deps.mayTrigger?.(group, m) ?? true);
    if (group.isMain || !group.requiresTrigger) return allowed.length > 0;
    return allowed.some((m) => hasTrigger(m.content, group.trigger));
  }

  private real(messages: StoredMessage[]): StoredMessage[] {
    return messages.filter((m) => !isAssistantEcho(m, this.deps.config.assistantName));
  }

  private pendingInput(jid: string) {
    const all = this.deps.store.messages.newSince([jid], this.agentCursor(jid), 500);
    return { messages: this.real(all), lastSeq: all.at(-1)?.seq ?? this.agentCursor(jid) };
  }

  checkNewMessages(): void {
    // A backlog bigger than one page is routed now, not a page per poll.
    while (this.routePage() === ROUTE_PAGE);
  }

  private routePage(): number {
    const { store } = this.deps;
    const groups = new Map(store.groups.all().map((g) => [g.jid, g]));
    const seen = Number(store.state.get(SEEN_KEY) ?? 0);
    const fresh = store.messages.newSince([...groups.keys()], seen, ROUTE_PAGE);
    if (fresh.length === 0) return 0;
    store.state.set(SEEN_KEY, String(fresh.at(-1)!.seq));

    for (const jid of new Set(fresh.map((m) => m.chatJid))) {
      const messages = this.real(fresh.filter((m) => m.chatJid === jid));
      if (!this.isTriggered(groups.get(jid)!, messages)) {
        if (messages.length > 0) this.deps.onUntriggered?.(jid);
        continue;
      }
      // A sandbox already running for this group takes the messages as a follow-up.
      const pending = this.pendingInput(jid);
      if (pending.messages.length > 0 && this.queue.sendMessage(jid, formatMessages(pending.messages))) {
        this.write(agentKey(jid), pending.lastSeq);
        void this.deps.setTyping(jid, true).catch(() => undefined);
      } else this.queue.enqueueMessageCheck(jid);
    }
    return fresh.length;
  }

  /** Start-up: a run the last host was killed in is rolled back, then pending messages get a run. */
  private recoverPending(): void {
    for (const group of this.deps.store.groups.all()) {
      const to = this.rollbackPoint(group.jid);
      const from = this.agentCursor(group.jid);
      if (to !== undefined && from > to) {
        logger.warn({ group: group.folder, from, to }, 'rolling back a run interrupted by a host stop');
        this.write(agentKey(group.jid), to);
      }
      if (to !== undefined) this.write(runKey(group.jid), undefined);
      const { messages } = this.pendingInput(group.jid);
      if (messages.length > 0 && this.isTriggered(group, messages)) {
        logger.info({ group: group.folder, count: messages.length }, 'recovering unprocessed messages');
        this.queue.enqueueMessageCheck(group.jid);
      }
    }
  }

  /** A warm run: the sandbox starts with no prompt and its first message arrives as a follow-up. */
  runWarm(jid: string): Promise<boolean> {
    return this.processGroupMessages(jid, true);
  }

  /**
   * The queue's worker for one group. The cursor is advanced before the run and rolled back if it
   * fails, but only to the last message that got an answer: a partial answer beats a duplicate.
   */
  private async processGroupMessages(jid: string, warm = false): Promise<boolean> {
    const { store, runner, config, failures } = this.deps;
    const group = store.groups.byJid(jid);
    if (!group) return true;
    const previousCursor = this.agentCursor(jid);
    const pending = this.pendingInput(jid);
    if (!warm && (pending.messages.length === 0 || !this.isTriggered(group, pending.messages))) return true;
    // A permanent cause that still holds: the person is told, no sandbox starts, nothing retries.
    let newest = pending.messages.at(-1)?.seq ?? 0;
    if (!warm && (await failures?.gate(jid, group.folder, newest))) return true;

    this.write(runKey(jid), previousCursor);
    if (!warm) this.write(agentKey(jid), pending.lastSeq);
    const typing = (on: boolean) => this.deps.setTyping(jid, on).catch(() => undefined);
    if (!warm) await typing(true);
    const dispatch = { store, runner, assistantName: config.assistantName };
    const output = await runAgentForGroup(dispatch, group, warm ? '' : formatMessages(pending.messages), {
      chatJid: jid,
      useGroupSession: true,
      onResult: async (result) => {
        const text = formatOutbound(result.result);
        // Marked before sending: a host dying in between loses the answer rather than repeats it.
        if (text || result.status === 'success') this.markAnswered(jid);
        if (text) await this.deps.send(jid, text);
        if (result.status === 'success') {
          await typing(false);
          this.queue.notifyIdle(jid);
        }
      },
    });
    // The person never sees a warm start that got no message.
    const given = this.agentCursor(jid) > previousCursor;
    if (given) await typing(false);
    if (warm) newest = this.agentCursor(jid);

    const rollbackTo = this.rollbackPoint(jid) ?? previousCursor;
    this.write(runKey(jid), undefined);
    const unanswered = this.agentCursor(jid) > rollbackTo;
    const log = { group: group.folder, error: output.error, rolledBackTo: rollbackTo };
    if (output.status === 'error') {
      if (!unanswered) {
        logger.warn(log, 'run failed after its output was sent; not retrying');
        return true;
      }
      this.write(agentKey(jid), rollbackTo);
      const why = output.failure ?? failure('unknown');
      // Permanent: no retry; the gate runs the messages once the cause is gone.
      logger.warn(
        { ...log, cause: why.cause },
        `run failed; messages ${why.kind === 'permanent' ? 'wait' : 'will be retried'}`,
      );
      void failures?.onRunFailed(jid, group.folder, why, newest);
      return why.kind === 'permanent';
    }
    if (unanswered && (rollbackTo > previousCursor || warm)) {
      // Follow-ups piped in while the sandbox was closing were never read: run them again.
      logger.info(log, 'follow-ups left unread; running them');
      this.write(agentKey(jid), rollbackTo);
      this.queue.enqueueMessageCheck(jid);
    }
    if (given) failures?.onRunSucceeded(jid);
    return true;
  }
}
