import crypto from 'node:crypto';
import type { Store } from './db/store.js';
import { logger } from './logger.js';
import type { Channel } from './types.js';

export interface OutboundDeps {
  store: Store;
  channels(): Channel[];
  assistantName: string;
  allowSend?(jid: string): boolean;
}

/** The one way assistant text leaves the host: stored as the assistant's own, then sent. */
export class Outbound {
  private readonly dropped = new Map<string, number>();

  constructor(private readonly deps: OutboundDeps) {}

  private channelFor(jid: string) {
    return this.deps.channels().find((c) => c.ownsJid(jid));
  }

  async send(
    jid: string,
    text: string,
    sender?: string,
    opts: { unlimited?: boolean } = {},
  ): Promise<boolean> {
    if (!opts.unlimited) {
      if (this.deps.allowSend?.(jid) === false) {
        this.noteDropped(jid, text);
        return false;
      }
      const dropped = this.dropped.get(jid);
      if (dropped) {
        this.dropped.delete(jid);
        logger.warn({ jid, dropped }, 'rate limit lifted; messages were dropped meanwhile');
      }
    }
    const channel = this.channelFor(jid);
    if (!channel) {
      logger.warn({ jid }, 'no channel for chat; message not sent');
      return false;
    }
    this.deps.store.messages.store({
      id: `out-${crypto.randomUUID()}`,
      chatJid: jid,
      sender: 'assistant',
      senderName: sender ?? this.deps.assistantName,
      content: text,
      timestamp: new Date().toISOString(),
      isFromMe: true,
      isBotMessage: true,
    });
    try {
      await channel.sendMessage(jid, text);
      return true;
    } catch (err) {
      logger.error({ jid, channel: channel.name, err }, 'send failed');
      return false;
    }
  }

  /** A flood is logged as it starts and then every 100 drops. */
  private noteDropped(jid: string, text: string): void {
    const count = (this.dropped.get(jid) ?? 0) + 1;
    this.dropped.set(jid, count);
    if (count === 1 || count % 100 === 0)
      logger.warn({ jid, dropped: count, chars: text.length }, 'outbound message dropped by rate limit');
    else logger.debug({ jid, dropped: count }, 'outbound message dropped by rate limit');
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    try {
      await this.channelFor(jid)?.setTyping?.(jid, isTyping);
    } catch (err) {
      logger.debug({ jid, err }, 'typing update failed');
    }
  }
}
