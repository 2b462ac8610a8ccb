import crypto from 'node:crypto';
import type { Store } from './db/store.js';
import { logger } from './logger.js';
import type { Channel } from './types.js';

export interface OutboundDeps {
  store: Store;
  channels(): Channel[];
  assistantName: string;
  /** Rate limit per chat; false = drop (and log). */
  allowSend?(jid: string): boolean;
  now?: () => Date;
}

/**
 * The one way assistant text leaves the host: recorded in the store as the assistant's own message
 * (so it is never fed back as input and shows in history), then handed to the channel owning the chat.
 */
export class Outbound {
  constructor(private readonly deps: OutboundDeps) {}

  channelFor(jid: string): Channel | undefined {
    return this.deps.channels().find((c) => c.ownsJid(jid));
  }

  async send(
    jid: string,
    text: string,
    sender?: string,
    opts: { unlimited?: boolean } = {},
  ): Promise<boolean> {
    if (!opts.unlimited && this.deps.allowSend && !this.deps.allowSend(jid)) {
      logger.warn({ jid, chars: text.length }, 'outbound message dropped by rate limit');
      return false;
    }
    const channel = this.channelFor(jid);
    if (!channel) {
      logger.warn({ jid }, 'no channel for chat; message not sent');
      return false;
    }
    const timestamp = (this.deps.now?.() ?? new Date()).toISOString();
    this.deps.store.messages.store({
      id: `out-${crypto.randomUUID()}`,
      chatJid: jid,
      sender: 'assistant',
      senderName: sender ?? this.deps.assistantName,
      content: text,
      timestamp,
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

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    try {
      await this.channelFor(jid)?.setTyping?.(jid, isTyping);
    } catch (err) {
      logger.debug({ jid, err }, 'typing update failed');
    }
  }
}
