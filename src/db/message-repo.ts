import type { ChannelCallbacks, ChatInfo, NewMessage } from '../types.js';
import { camel, type Db } from './store.js';

/** `seq` orders messages and backs the cursors. */
export interface StoredMessage extends NewMessage {
  seq: number;
}

type Row = Record<string, unknown>;
const COLUMNS = 'seq, id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message';
const toMessage = (row: Row): StoredMessage => ({
  ...camel<StoredMessage>(row),
  isFromMe: row.is_from_me === 1,
  isBotMessage: row.is_bot_message === 1,
});

export class MessageRepo {
  constructor(private readonly db: Db) {}

  /** Its seq, or null for a second delivery of the same (chat, id). */
  store(message: NewMessage): number | null {
    const result = this.db
      .prepare(
        `INSERT OR IGNORE INTO messages (id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message)
         VALUES (@id, @chatJid, @sender, @senderName, @content, @timestamp, @isFromMe, @isBotMessage)`,
      )
      .run({ ...message, isFromMe: message.isFromMe ? 1 : 0, isBotMessage: message.isBotMessage ? 1 : 0 });
    return result.changes === 1 ? Number(result.lastInsertRowid) : null;
  }

  upsertChat(chat: Parameters<ChannelCallbacks['onChatMetadata']>[0]): void {
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
    const sql =
      'SELECT jid, name, last_message_time, channel, is_group FROM chats ORDER BY last_message_time DESC';
    return (this.db.prepare(sql).all() as Row[]).map((r) => ({
      ...camel<ChatInfo>(r),
      isGroup: r.is_group === 1,
    }));
  }

  latestSeq(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS seq FROM messages').get() as { seq: number | null };
    return row.seq ?? 0;
  }

  /** Oldest first, without the assistant's own. */
  newSince(chatJids: string[], afterSeq: number, limit = 1000): StoredMessage[] {
    if (chatJids.length === 0) return [];
    const sql = `SELECT ${COLUMNS} FROM messages WHERE seq > ? AND chat_jid IN (${chatJids.map(() => '?').join(',')})
      AND is_bot_message = 0 ORDER BY seq LIMIT ?`;
    return (this.db.prepare(sql).all(afterSeq, ...chatJids, limit) as Row[]).map(toMessage);
  }

  /** For people (the local page): both directions, oldest first. */
  /** The newest `limit` messages in the window, oldest first ("before" pages back). */
  history(chatJid: string, afterTimestamp?: string, limit = 200, beforeTimestamp?: string): StoredMessage[] {
    // Only the bounds given: with none, the (chat_jid, seq) index answers without a sort.
    const bounds = [
      ...(afterTimestamp ? [['timestamp > ?', afterTimestamp]] : []),
      ...(beforeTimestamp ? [['timestamp < ?', beforeTimestamp]] : []),
    ];
    const where = ['chat_jid = ?', ...bounds.map(([sql]) => sql)].join(' AND ');
    const sql = `SELECT * FROM (SELECT ${COLUMNS} FROM messages WHERE ${where} ORDER BY seq DESC LIMIT ?) ORDER BY seq`;
    const rows = this.db.prepare(sql).all(chatJid, ...bounds.map(([, value]) => value), limit);
    return (rows as Row[]).map(toMessage);
  }
}
