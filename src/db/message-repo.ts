import type { ChannelCallbacks, ChatInfo, NewMessage } from '../types.js';
import { query, type Db } from './store.js';

export type StoredMessage = NewMessage & { seq: number };

const FIELDS = 'id chatJid sender senderName content timestamp isFromMe isBotMessage';
const COLUMNS = 'seq, id, chat_jid, sender, sender_name, content, timestamp, is_from_me, is_bot_message';

export function messageRepo(db: Db) {
  const { all, value, insert } = query(db);
  return {
    /** Its seq, or null for a second delivery of the same (chat, id). */
    store(message: NewMessage): number | null {
      const { changes, lastInsertRowid } = insert('messages', FIELDS, message, 'ON CONFLICT DO NOTHING');
      return changes ? Number(lastInsertRowid) : null;
    },
    upsertChat: (chat: Parameters<ChannelCallbacks['onChatMetadata']>[0]) =>
      void insert(
        'chats',
        'jid name lastMessageTime channel isGroup',
        { ...chat, name: chat.name ?? '', lastMessageTime: chat.timestamp, isGroup: !!chat.isGroup },
        `ON CONFLICT DO UPDATE SET name = CASE WHEN excluded.name != '' THEN excluded.name ELSE chats.name END,
           last_message_time = MAX(chats.last_message_time, excluded.last_message_time),
           channel = excluded.channel, is_group = MAX(chats.is_group, excluded.is_group)`,
      ),
    listChats: () => all<ChatInfo>('SELECT * FROM chats ORDER BY last_message_time DESC'),
    latestSeq: () => value<number | null>('SELECT MAX(seq) FROM messages') ?? 0,
    /** Oldest first, without the assistant's own. */
    newSince: (chatJids: string[], afterSeq: number, limit: number) =>
      all<StoredMessage>(
        `SELECT ${COLUMNS} FROM messages WHERE seq > ? AND chat_jid IN (${chatJids.map(() => '?')})
         AND is_bot_message = 0 ORDER BY seq LIMIT ?`,
        afterSeq,
        ...chatJids,
        limit,
      ),
    /** The newest `limit` in the window, oldest first. */
    history(chatJid: string, after?: string, limit = 200, before?: string): StoredMessage[] {
      const bounds = [after && ['>', after], before && ['<', before]].filter((b) => !!b);
      return all<StoredMessage>(
        `SELECT * FROM (SELECT ${COLUMNS} FROM messages WHERE ${['chat_jid = ?', ...bounds.map(([op]) => `timestamp ${op} ?`)].join(' AND ')}
         ORDER BY seq DESC LIMIT ?) ORDER BY seq`,
        chatJid,
        ...bounds.map(([, v]) => v),
        limit,
      );
    },
  };
}
