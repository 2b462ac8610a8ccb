import type { Config } from './config.js';
import type { Store } from './db/store.js';
import type { StoredMessage } from './db/messages.js';
import { runAgentForGroup } from './agent-dispatch.js';
import { logger } from './logger.js';
import { formatMessages, formatOutbound, hasTrigger, isAssistantEcho } from './router.js';
import type { AgentRunner, RegisteredGroup } from './types.js';

export interface MessageLoopQueue {
  enqueueMessageCheck(jid: string): void;
  sendMessage(jid: string, text: string): boolean;
  notifyIdle(jid: string): void;
}

export interface MessageLoopDeps {
  store: Store;
  config: Pick<Config, 'assistantName' | 'safetyPollMs'>;
  queue: MessageLoopQueue;
  runner: AgentRunner;
  /** Delivers assistant text to a chat (and records it). */
  send(jid: string, text: string): Promise<void>;
  setTyping(jid: string, isTyping: boolean): Promise<void>;
  /** Optional per-group sender allowlist: may this message trigger the agent? */
  mayTrigger?(group: RegisteredGroup, message: StoredMessage): boolean;
  /** A run failed and its messages were rolled back for a retry. */
  onRunFailed?(group: RegisteredGroup, error: string): void;
  onRunSucceeded?(group: RegisteredGroup): void;
}

const SEEN_KEY = 'last_seen_seq';
/** Messages read from the store per routing step. */
const ROUTE_PAGE = 1000;
const agentKey = (jid: string) => `agent_seq:${jid}`;
/**
 * While a message run is in progress: the agent cursor up to which its messages count as answered
 * (where to roll back to if the run dies). Empty when no run is in progress. Kept in SQLite, so a
 * host killed mid-run finds it at the next start.
 */
const runKey = (jid: string) => `agent_run:${jid}`;

/**
 * Turns stored messages into agent runs. Two cursors: what the loop has seen (global), and per
 * group what an agent has processed. Non-trigger messages stay behind the agent cursor and so are
 * included as context when a trigger arrives.
 */
export class MessageLoop {
  private pollTimer: NodeJS.Timeout | null = null;
  private checkScheduled = false;
  private running = false;

  constructor(private readonly deps: MessageLoopDeps) {}

  start(): void {
    this.running = true;
    this.recoverPending();
    this.pollTimer = setInterval(() => this.checkNow(), this.deps.config.safetyPollMs);
    this.pollTimer.unref();
  }

  stop(): void {
    this.running = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  /** A message was stored: route it at once (coalesced; the poll is only a safety net). */
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

  private setAgentCursor(jid: string, seq: number): void {
    this.deps.store.state.set(agentKey(jid), String(seq));
  }

  private rollbackPoint(jid: string): number | undefined {
    const value = this.deps.store.state.get(runKey(jid));
    return value ? Number(value) : undefined;
  }

  private setRollbackPoint(jid: string, seq: number | undefined): void {
    this.deps.store.state.set(runKey(jid), seq === undefined ? '' : String(seq));
  }

  /**
   * Output of the group's running message sandbox reached a chat (a result, or a send_message over
   * IPC): the messages it has been given so far count as answered and are never run again.
   */
  markAnswered(jid: string): void {
    if (this.rollbackPoint(jid) !== undefined) this.setRollbackPoint(jid, this.agentCursor(jid));
  }

  private isTriggered(group: RegisteredGroup, messages: StoredMessage[]): boolean {
    const allowed = messages.filter((m) => this.deps.mayTrigger?.(group, m) ?? true);
    if (group.isMain || !group.requiresTrigger) return allowed.length > 0;
    return allowed.some((m) => hasTrigger(m.content, group.trigger));
  }

  private pendingInput(jid: string): { messages: StoredMessage[]; lastSeq: number } {
    const all = this.deps.store.messages.pendingFor(jid, this.agentCursor(jid));
    const lastSeq = all.at(-1)?.seq ?? this.agentCursor(jid);
    const messages = all.filter((m) => !isAssistantEcho(m, this.deps.config.assistantName));
    return { messages, lastSeq };
  }

  checkNewMessages(): void {
    // A burst bigger than one page (a channel's offline backlog) is routed now, not a page per poll.
    let routed: number;
    do routed = this.routePage();
    while (routed === ROUTE_PAGE);
  }

  /** Routes up to one page of messages the loop has not seen; returns how many it read. */
  private routePage(): number {
    const { store, queue } = this.deps;
    const groups = new Map(store.groups.all().map((g) => [g.jid, g]));
    const lastSeen = Number(store.state.get(SEEN_KEY) ?? 0);
    const fresh = store.messages.newSince([...groups.keys()], lastSeen, ROUTE_PAGE);
    if (fresh.length === 0) return 0;
    store.state.set(SEEN_KEY, String(fresh.at(-1)!.seq));

    const byChat = new Map<string, StoredMessage[]>();
    for (const m of fresh) {
      const list = byChat.get(m.chatJid);
      if (list) list.push(m);
      else byChat.set(m.chatJid, [m]);
    }
    for (const [jid, messages] of byChat) {
      const group = groups.get(jid)!;
      const real = messages.filter((m) => !isAssistantEcho(m, this.deps.config.assistantName));
      if (!this.isTriggered(group, real)) continue;
      // A sandbox already running for this group takes the messages as a follow-up.
      const pending = this.pendingInput(jid);
      if (pending.messages.length > 0 && queue.sendMessage(jid, formatMessages(pending.messages))) {
        this.setAgentCursor(jid, pending.lastSeq);
        void this.deps.setTyping(jid, true).catch(() => undefined);
        continue;
      }
      queue.enqueueMessageCheck(jid);
    }
    return fresh.length;
  }

  /**
   * Start-up: a run the previous host was killed in is rolled back to its last answered message;
   * then anything stored but not yet processed by an agent gets a run.
   */
  recoverPending(): void {
    for (const group of this.deps.store.groups.all()) {
      const rollbackTo = this.rollbackPoint(group.jid);
      if (rollbackTo === undefined) continue;
      if (this.agentCursor(group.jid) > rollbackTo) {
        logger.warn(
          { group: group.folder, from: this.agentCursor(group.jid), to: rollbackTo },
          'rolling back a run interrupted by a host stop',
        );
        this.setAgentCursor(group.jid, rollbackTo);
      }
      this.setRollbackPoint(group.jid, undefined);
    }
    for (const group of this.deps.store.groups.all()) {
      const pending = this.pendingInput(group.jid);
      if (pending.messages.length > 0 && this.isTriggered(group, pending.messages)) {
        logger.info(
          { group: group.folder, count: pending.messages.length },
          'recovering unprocessed messages',
        );
        this.deps.queue.enqueueMessageCheck(group.jid);
      }
    }
  }

  /**
   * The queue's worker for one group. The cursor is advanced before the run (with a rollback point
   * stored first) and rolled back if the run fails, but only to the last message that got an
   * answer: a partial answer beats a duplicate. Follow-ups piped in after the last answer are run
   * again.
   */
  async processGroupMessages(jid: string): Promise<boolean> {
    const group = this.deps.store.groups.byJid(jid);
    if (!group) return true;
    const previousCursor = this.agentCursor(jid);
    const pending = this.pendingInput(jid);
    if (pending.messages.length === 0 || !this.isTriggered(group, pending.messages)) return true;

    this.setRollbackPoint(jid, previousCursor);
    this.setAgentCursor(jid, pending.lastSeq);
    await this.deps.setTyping(jid, true).catch(() => undefined);
    const output = await runAgentForGroup(
      { store: this.deps.store, runner: this.deps.runner, assistantName: this.deps.config.assistantName },
      group,
      formatMessages(pending.messages),
      {
        chatJid: jid,
        useGroupSession: true,
        onResult: async (result) => {
          const text = formatOutbound(result.result);
          // Marked before sending: should the host die in between, the answer is lost rather
          // than given twice.
          if (text || result.status === 'success') this.markAnswered(jid);
          if (text) await this.deps.send(jid, text);
          if (result.status === 'success') {
            await this.deps.setTyping(jid, false).catch(() => undefined);
            this.deps.queue.notifyIdle(jid);
          }
        },
      },
    );
    await this.deps.setTyping(jid, false).catch(() => undefined);

    const rollbackTo = this.rollbackPoint(jid) ?? previousCursor;
    this.setRollbackPoint(jid, undefined);
    const unanswered = this.agentCursor(jid) > rollbackTo;
    if (output.status === 'error') {
      if (!unanswered) {
        logger.warn(
          { group: group.folder, error: output.error },
          'run failed after its output was sent; not retrying',
        );
        return true;
      }
      this.setAgentCursor(jid, rollbackTo);
      logger.warn(
        { group: group.folder, error: output.error, rolledBackTo: rollbackTo },
        'run failed; messages will be retried',
      );
      this.deps.onRunFailed?.(group, output.error ?? 'unknown error');
      return false;
    }
    if (unanswered && rollbackTo > previousCursor) {
      // Follow-ups piped in while the sandbox was closing were never read: run them again.
      logger.info({ group: group.folder, rolledBackTo: rollbackTo }, 'follow-ups left unread; running them');
      this.setAgentCursor(jid, rollbackTo);
      this.deps.queue.enqueueMessageCheck(jid);
    }
    this.deps.onRunSucceeded?.(group);
    return true;
  }
}
