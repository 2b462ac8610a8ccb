import type { ChannelCallbacks, ChatInfo, NewMessage } from '../types.js';
import { query, type Db } from './store.js';

export interface StoredMessage extends NewMessage {
  seq: number;
}

const COLUMNS = 'seq, id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message';

export function messageRepo(db: Db) {
  const { run, all, value, insert } = query(db);
  return {
    /** Its seq, or null for a second delivery of the same (chat, id). */
    store(message: NewMessage): number | null {
      const { changes, lastInsertRowid } = run(
        `INSERT OR IGNORE INTO messages (id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message)
         VALUES (@id, @chatJid, @sender, @senderName, @content, @timestamp, @isFromMe, @isBotMessage)`,
        message,
      );
      return changes === 1 ? Number(lastInsertRowid) : null;
    },
    upsertChat(chat: Parameters<ChannelCallbacks['onChatMetadata']>[0]): void {
      insert(
        'chats',
        'jid name lastMessageTime channel isGroup',
        { ...chat, name: chat.name ?? '', lastMessageTime: chat.timestamp, isGroup: !!chat.isGroup },
        `ON CONFLICT(jid) DO UPDATE SET name = CASE WHEN excluded.name != '' THEN excluded.name ELSE chats.name END,
           last_message_time = MAX(chats.last_message_time, excluded.last_message_time),
           channel = excluded.channel, is_group = MAX(chats.is_group, excluded.is_group)`,
      );
    },
    listChats: () => all<ChatInfo>('SELECT * FROM chats ORDER BY last_message_time DESC'),
    latestSeq: () => value<number | null>('SELECT MAX(seq) FROM messages') ?? 0,
    /** Oldest first, without the assistant's own. */
    newSince: (chatJids: string[], afterSeq: number, limit = 1000) =>
      all<StoredMessage>(
        `SELECT ${COLUMNS} FROM messages WHERE seq > ? AND chat_jid IN (${chatJids.map(() => '?')})
         AND is_bot_message = 0 ORDER BY seq LIMIT ?`,
        afterSeq,
        ...chatJids,
        limit,
      ),
    /** For the local page: the newest `limit` in the window, both directions, oldest first. */
    history(chatJid: string, after?: string, limit = 200, before?: string): StoredMessage[] {
      // Only the bounds given: with none, the (chat_jid, seq) index answers without a sort.
      const bounds = [after && ['>', after], before && ['<', before]].filter((b) => !!b);
      const where = ['chat_jid = ?', ...bounds.map(([op]) => `timestamp ${op} ?`)].join(' AND ');
      return all<StoredMessage>(
        `SELECT * FROM (SELECT ${COLUMNS} FROM messages WHERE ${where} ORDER BY seq DESC LIMIT ?) ORDER BY seq`,
        chatJid,
        ...bounds.map(([, v]) => v),
        limit,
      );
    },
  };
}
