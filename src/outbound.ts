import { ChannelSendError } from './channels/send-error.js';
import type { OutboxKind, OutboxRow } from './db/outbox-repo.js';
import type { Store } from './db/store.js';
import { logger } from './logger.js';
import { RateLimiter } from './policy/rate-limiter.js';
import type { Channel } from './types.js';

export interface OutboundDeps {
  store: Store;
  channels(): Channel[];
  assistantName: string;
  /** The chat's token bucket; undefined: not paced. */
  pacing?(jid: string): { key: string; perMinute: number; burst: number } | undefined;
  answerMaxWaitMs?: number;
  maxMessagesPerRun?: number;
  now?: () => number;
}

export interface EnqueueOptions {
  kind: OutboxKind;
  sourceFolder?: string;
  sender?: string;
}
export type EnqueueResult = { ok: true; id: number } | { ok: false; reason: string };

/** A channel may cap its message length; longer texts go as several messages. */
type SendingChannel = Channel & { maxTextLength?: number };

const CHANNEL_POLL_MS = 1_000;
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 60_000;
const KEEP_SENT_MS = 24 * 60 * 60 * 1000;
const STOP_WAIT_MS = 5_000;

/**
 * The one way assistant text leaves the host. Every text is stored in the outbox first; one sender
 * per chat sends that chat's oldest pending row, paced by the group's bucket, and only once the
 * channel took it is it recorded as the assistant's message, in the same transaction that marks it
 * sent. A host killed in between repeats at most that one message; it never loses one.
 */
export class Outbound {
  private readonly limiter: RateLimiter;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Chats whose sender runs; true when kicked again meanwhile. */
  private readonly pumping = new Map<string, boolean>();
  private readonly inflight = new Set<Promise<void>>();
  /** Outbox id at the start of a folder's current run: the per-run cap counts from there. */
  private readonly runStart = new Map<string, number>();
  private running = false;

  constructor(private readonly deps: OutboundDeps) {
    this.limiter = new RateLimiter(() => this.now());
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private channelFor(jid: string): SendingChannel | undefined {
    return this.deps.channels().find((c) => c.ownsJid(jid));
  }

  /** Synchronous and durable: once this returns ok, the text will be sent (or fail with a reason). */
  enqueue(jid: string, text: string, opts: EnqueueOptions): EnqueueResult {
    const { store } = this.deps;
    const folder = opts.sourceFolder;
    if (opts.kind === 'agent' && folder) {
      const max = this.deps.maxMessagesPerRun ?? 100;
      const since = store.outbox.sinceAnswer(folder, this.runStart.get(folder) ?? 0);
      if (since.agent >= max) {
        if (since.notices === 0) {
          logger.warn({ folder, max }, 'agent hit the per-run message cap; further messages refused');
          const chat = store.groups.byFolder(folder)?.jid ?? jid;
          const notice = `I stopped sending after ${max} messages in one run.`;
          this.insert(chat, notice, { kind: 'notice', sourceFolder: folder });
        }
        return {
          ok: false,
          reason: `message cap reached: ${max} messages in one run; give your answer instead`,
        };
      }
    }
    return { ok: true, id: this.insert(jid, text, opts) };
  }

  /** A thin wrapper for callers that only need to know it was queued. */
  async send(
    jid: string,
    text: string,
    sender?: string,
    opts: { unlimited?: boolean } = {},
  ): Promise<boolean> {
    return this.enqueue(jid, text, { kind: opts.unlimited ? 'notice' : 'agent', ...(sender && { sender }) })
      .ok;
  }

  /** A new run of the folder's agent: its message cap starts again. */
  newRun(folder: string): void {
    this.runStart.set(folder, this.deps.store.outbox.lastId());
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    try {
      await this.channelFor(jid)?.setTyping?.(jid, isTyping);
    } catch (err) {
      logger.debug({ jid, err }, 'typing update failed');
    }
  }

  start(): void {
    this.running = true;
    this.deps.store.outbox.prune(this.now() - KEEP_SENT_MS);
    for (const jid of this.deps.store.outbox.pendingChats()) this.kick(jid);
  }

  /** Sends in flight finish (and are recorded); pending rows wait for the next start. */
  async stop(): Promise<void> {
    this.running = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((done) => (timer = setTimeout(done, STOP_WAIT_MS)));
    await Promise.race([Promise.allSettled([...this.inflight]), late]);
    clearTimeout(timer);
  }

  private insert(jid: string, text: string, opts: EnqueueOptions): number {
    const max = this.channelFor(jid)?.maxTextLength;
    const parts = max ? splitText(text, max) : [text];
    const row = { chatJid: jid, kind: opts.kind, sourceFolder: opts.sourceFolder ?? null };
    const id = this.deps.store.outbox.insert(
      parts.map((part) => ({ ...row, text: part, sender: opts.sender ?? null })),
      this.now(),
    );
    this.kick(jid);
    return id;
  }

  /** Every decision is made again from the stored rows, so an extra kick is always safe. */
  private kick(jid: string): void {
    if (!this.running) return;
    clearTimeout(this.timers.get(jid));
    this.timers.delete(jid);
    if (this.pumping.has(jid)) return void this.pumping.set(jid, true);
    this.pumping.set(jid, false);
    const run: Promise<void> = this.pump(jid)
      .catch((err: unknown) => {
        logger.error({ jid, err }, 'outbox sender failed');
        this.wake(jid, RETRY_MAX_MS);
      })
      .finally(() => {
        this.inflight.delete(run);
        const again = this.pumping.get(jid);
        this.pumping.delete(jid);
        if (again) this.kick(jid);
      });
    this.inflight.add(run);
  }

  private wake(jid: string, ms: number): void {
    if (!this.running) return;
    clearTimeout(this.timers.get(jid));
    this.timers.set(
      jid,
      setTimeout(() => {
        this.timers.delete(jid);
        this.kick(jid);
      }, ms),
    );
  }

  private async pump(jid: string): Promise<void> {
    const { store } = this.deps;
    for (let row = store.outbox.head(jid); row && this.running; row = store.outbox.head(jid)) {
      const now = this.now();
      const channel = this.channelFor(jid);
      if (!channel) {
        this.fail(row, 'no channel owns this chat');
        continue;
      }
      const wait =
        row.nextAttemptAt > now
          ? row.nextAttemptAt - now
          : channel.isConnected()
            ? this.paceWait(row, now)
            : CHANNEL_POLL_MS;
      if (wait > 0) return this.wake(jid, wait);
      try {
        await channel.sendMessage(jid, row.text);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (err instanceof ChannelSendError && err.kind === 'permanent') this.fail(row, reason);
        else {
          const backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(row.attempts, 16));
          const delay = Math.round(backoff * (0.5 + Math.random() / 2));
          store.outbox.retryAt(row.id, this.now() + delay, reason);
          logger.warn(
            { jid, channel: channel.name, attempts: row.attempts + 1, delay, err },
            'send failed; will retry',
          );
        }
        continue;
      }
      this.recordSent(row);
    }
  }

  private recordSent(row: OutboxRow): void {
    const { store, assistantName } = this.deps;
    store.db.transaction(() => {
      store.messages.store({
        id: `out-${row.id}`,
        chatJid: row.chatJid,
        sender: 'assistant',
        senderName: row.sender ?? assistantName,
        content: row.text,
        timestamp: new Date(this.now()).toISOString(),
        isFromMe: true,
        isBotMessage: true,
      });
      store.outbox.markSent(row.id);
    })();
  }

  private fail(row: OutboxRow, reason: string): void {
    logger.error(
      { jid: row.chatJid, id: row.id, kind: row.kind, reason },
      'outbound message failed for good',
    );
    this.deps.store.outbox.markFailed(row.id, reason);
  }

  /**
   * Notices are never paced. An answer waits behind the agent's own messages at most
   * answerMaxWaitMs; then it and everything ahead of it go at once.
   */
  private paceWait(row: OutboxRow, now: number): number {
    if (row.kind === 'notice') return 0;
    const pace = this.deps.pacing?.(row.chatJid);
    if (!pace) return 0;
    const answerAt = this.deps.store.outbox.oldestPendingAnswerAt(row.chatJid);
    const release =
      answerAt === undefined ? Infinity : answerAt + (this.deps.answerMaxWaitMs ?? 30_000) - now;
    const wait = this.limiter.take(pace.key, pace.perMinute, pace.burst, release <= 0);
    return Math.min(wait, release);
  }
}

/** At paragraph, then line, then word boundaries when one is in the second half of the window. */
export function splitText(text: string, max: number): string[] {
  const parts: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const window = rest.slice(0, max + 1);
    const cut = ['\n\n', '\n', ' '].map((sep) => window.lastIndexOf(sep)).find((i) => i > max / 2) ?? max;
    parts.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest) parts.push(rest);
  return parts;
}
