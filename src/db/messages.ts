import type { ChatInfo, NewMessage } from '../types.js';
import type { Db } from './store.js';

/** A stored message with its position in the store; `seq` orders messages and backs the cursors. */
export interface StoredMessage extends NewMessage {
  seq: number;
}

interface MessageRow {
  seq: number;
  id: string;
  chat_jid: string;
  sender: string;
  sender_name: string;
  content: string;
  timestamp: string;
  is_from_me: number;
  is_bot_message: number;
}

const COLUMNS = 'seq, id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message';

function toMessage(row: MessageRow): StoredMessage {
  return {
    seq: row.seq,
    id: row.id,
    chatJid: row.chat_jid,
    sender: row.sender,
    senderName: row.sender_name,
    content: row.content,
    timestamp: row.timestamp,
    isFromMe: row.is_from_me === 1,
    isBotMessage: row.is_bot_message === 1,
  };
}

export class MessageRepo {
  constructor(private readonly db: Db) {}

  /** Stores a message once; a second delivery of the same (chat, id) is ignored. Returns its seq. */
  store(message: NewMessage): number | null {
    const result = this.db
      .prepare(
        `INSERT OR IGNORE INTO messages (id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        message.id,
        message.chatJid,
        message.sender,
        message.senderName,
        message.content,
        message.timestamp,
        message.isFromMe ? 1 : 0,
        message.isBotMessage ? 1 : 0,
      );
    return result.changes === 1 ? Number(result.lastInsertRowid) : null;
  }

  upsertChat(chat: {
    jid: string;
    timestamp: string;
    name?: string;
    channel: string;
    isGroup?: boolean;
  }): void {
    this.db
      .prepare(
        `INSERT INTO chats (jid, name, last_message_time, channel, is_group) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(jid) DO UPDATE SET
           name = CASE WHEN excluded.name != '' THEN excluded.name ELSE chats.name END,
           last_message_time = MAX(chats.last_message_time, excluded.last_message_time),
           channel = excluded.channel,
           is_group = MAX(chats.is_group, excluded.is_group)`,
      )
      .run(chat.jid, chat.name ?? '', chat.timestamp, chat.channel, chat.isGroup ? 1 : 0);
  }

  listChats(): ChatInfo[] {
    const rows = this.db
      .prepare(
        'SELECT jid, name, last_message_time, channel, is_group FROM chats ORDER BY last_message_time DESC',
      )
      .all() as Array<{
      jid: string;
      name: string;
      last_message_time: string;
      channel: string;
      is_group: number;
    }>;
    return rows.map((r) => ({
      jid: r.jid,
      name: r.name,
      lastMessageTime: r.last_message_time,
      channel: r.channel,
      isGroup: r.is_group === 1,
    }));
  }

  /** Highest seq in the store (0 when empty). */
  latestSeq(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS seq FROM messages').get() as { seq: number | null };
    return row.seq ?? 0;
  }

  /** Messages after `afterSeq` in any of the chats, oldest first, the assistant's own left out. */
  newSince(chatJids: string[], afterSeq: number, limit = 1000): StoredMessage[] {
    if (chatJids.length === 0) return [];
    const placeholders = chatJids.map(() => '?').join(',');
    const rows = this.db
      .prepare(
        `SELECT ${COLUMNS} FROM messages
         WHERE seq > ? AND chat_jid IN (${placeholders}) AND is_bot_message = 0
         ORDER BY seq LIMIT ?`,
      )
      .all(afterSeq, ...chatJids, limit) as MessageRow[];
    return rows.map(toMessage);
  }

  /** One chat's messages after `afterSeq`, oldest first, the assistant's own left out. */
  pendingFor(chatJid: string, afterSeq: number, limit = 500): StoredMessage[] {
    const rows = this.db
      .prepare(
        `SELECT ${COLUMNS} FROM messages WHERE chat_jid = ? AND seq > ? AND is_bot_message = 0
         ORDER BY seq LIMIT ?`,
      )
      .all(chatJid, afterSeq, limit) as MessageRow[];
    return rows.map(toMessage);
  }

  /** Chat history for people (the local page): inbound and outbound, oldest first. */
  history(chatJid: string, afterTimestamp: string | undefined, limit = 200): StoredMessage[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM (
           SELECT ${COLUMNS} FROM messages WHERE chat_jid = ? AND timestamp > ? ORDER BY seq DESC LIMIT ?
         ) ORDER BY seq`,
      )
      .all(chatJid, afterTimestamp ?? '', limit) as MessageRow[];
    return rows.map(toMessage);
  }
}
