import { setTimeout as sleep } from 'node:timers/promises';
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
  pacing?(jid: string): { key: string; perMinute: number; burst: number } | undefined;
  answerMaxWaitMs?: number;
  maxMessagesPerRun?: number;
}

type Options = { kind: OutboxKind; sourceFolder?: string | undefined; sender?: string | undefined };
const RETRY_MAX_MS = 60_000;

/**
 * Stored first; one sender per chat sends the oldest pending row, and records it as the assistant's
 * message in the transaction that marks it sent: a killed host repeats at most one, loses none.
 */
export class Outbound {
  private readonly limiter = new RateLimiter();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly pumping = new Map<string, { again: boolean; run: Promise<void> }>();
  private readonly runStart = new Map<string, number>();
  private running = false;

  constructor(private readonly deps: OutboundDeps) {}

  private channelFor = (jid: string) => this.deps.channels().find((c) => c.ownsJid(jid));

  enqueue(jid: string, text: string, o: Options): { ok: true; id: number } | { ok: false; reason: string } {
    const { store, maxMessagesPerRun: max = 100 } = this.deps;
    const folder = o.sourceFolder;
    const since =
      o.kind === 'agent' && folder && store.outbox.sinceAnswer(folder, this.runStart.get(folder) ?? 0);
    if (!since || since.agent < max) return { ok: true, id: this.insert(jid, text, o) };
    const notice = `I stopped sending after ${max} messages in one run.`;
    const to = store.groups.byFolder(folder)?.jid ?? jid;
    if (!since.notices) this.insert(to, notice, { kind: 'notice', sourceFolder: folder });
    return { ok: false, reason: `message cap reached (${max} per run); give your answer instead` };
  }

  newRun = (folder: string) => void this.runStart.set(folder, this.deps.store.outbox.lastId());

  async setTyping(jid: string, isTyping: boolean) {
    const channel = this.channelFor(jid);
    await channel?.setTyping?.(jid, isTyping).catch(() => undefined);
  }

  start() {
    this.running = true;
    this.deps.store.outbox.prune(Date.now() - 86_400_000);
    for (const jid of this.deps.store.outbox.pendingChats()) this.kick(jid);
  }

  async stop() {
    this.running = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    const inflight = [...this.pumping.values()].map((p) => p.run);
    await Promise.race([Promise.allSettled(inflight), sleep(5_000, undefined, { ref: false })]);
  }

  private insert(chatJid: string, text: string, { kind, sourceFolder, sender }: Options) {
    const max = this.channelFor(chatJid)?.maxTextLength;
    const row = { chatJid, kind, sourceFolder: sourceFolder ?? null, sender: sender ?? null };
    const rows = (max ? splitText(text, max) : [text]).map((t) => ({ ...row, text: t }));
    const id = this.deps.store.outbox.insert(rows, Date.now());
    this.kick(chatJid);
    return id;
  }

  private kick(jid: string, ms = 0) {
    if (!this.running) return;
    clearTimeout(this.timers.get(jid));
    if (ms) return void this.timers.set(jid, setTimeout(this.kick.bind(this, jid, 0), ms));
    const pumping = this.pumping.get(jid);
    if (pumping) return void (pumping.again = true);
    const state = {
      again: false,
      run: this.pump(jid)
        .catch((err: unknown) => {
          logger.error({ jid, err }, 'outbox sender failed');
          this.kick(jid, RETRY_MAX_MS);
        })
        .finally(() => {
          this.pumping.delete(jid);
          if (state.again) this.kick(jid);
        }),
    };
    this.pumping.set(jid, state);
  }

  private async pump(jid: string) {
    const { store } = this.deps;
    for (let row = store.outbox.head(jid); row && this.running; row = store.outbox.head(jid)) {
      const now = Date.now();
      const channel = this.channelFor(jid);
      if (!channel) {
        this.fail(row, 'no channel owns this chat');
        continue;
      }
      const wait =
        Math.max(row.nextAttemptAt - now, 0) || (channel.isConnected() ? this.paceWait(row, now) : 1_000);
      if (wait > 0) return this.kick(jid, wait);
      try {
        await channel.sendMessage(jid, row.text);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (err instanceof ChannelSendError && err.kind === 'permanent') this.fail(row, reason);
        else {
          const backoff = Math.min(RETRY_MAX_MS, 1_000 * 2 ** row.attempts);
          const delay = Math.round(backoff * (0.5 + Math.random() / 2));
          store.outbox.retryAt(row.id, Date.now() + delay, reason);
          logger.warn({ jid, attempts: row.attempts + 1, delay, err }, 'send failed; will retry');
        }
        continue;
      }
      store.db.transaction(() => {
        store.messages.store({
          id: `out-${row.id}`,
          chatJid: jid,
          sender: 'assistant',
          senderName: row.sender ?? this.deps.assistantName,
          content: row.text,
          timestamp: new Date().toISOString(),
          isFromMe: true,
          isBotMessage: true,
        });
        store.outbox.markSent(row.id);
      })();
    }
  }

  private fail({ chatJid, id }: OutboxRow, reason: string) {
    logger.error({ jid: chatJid, id, reason }, 'outbound message failed for good');
    this.deps.store.outbox.markFailed(id, reason);
  }

  /** Notices are never paced. An answer waits behind the agent's messages at most answerMaxWaitMs. */
  private paceWait(row: OutboxRow, now: number) {
    const pace = row.kind !== 'notice' && this.deps.pacing?.(row.chatJid);
    if (!pace) return 0;
    const answerAt = this.deps.store.outbox.oldestPendingAnswerAt(row.chatJid) ?? Infinity;
    const release = answerAt + (this.deps.answerMaxWaitMs ?? 30_000) - now;
    return Math.min(this.limiter.take(pace.key, pace.perMinute, pace.burst, release <= 0), release);
  }
}

/** At the last line break or space within max, else at max. */
export function splitText(text: string, max: number) {
  const parts: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const cut = Math.max(rest.lastIndexOf('\n', max), rest.lastIndexOf(' ', max));
    const at = cut > 0 ? cut : max;
    parts.push(rest.slice(0, at).trimEnd());
    rest = rest.slice(at).trimStart();
  }
  return rest ? [...parts, rest] : parts;
}
