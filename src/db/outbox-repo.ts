import { query, type Db } from './store.js';

export type OutboxKind = 'answer' | 'agent' | 'notice';

export interface OutboxRow {
  id: number;
  chatJid: string;
  text: string;
  kind: OutboxKind;
  sourceFolder: string | null;
  sender: string | null;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
}

const PENDING = `FROM outbox WHERE state = 'pending'`;

export function outboxRepo(db: Db) {
  const { run, all, value, insert } = query(db);
  const set = (id: number, changes: string, ...args: unknown[]) =>
    void run(`UPDATE outbox SET ${changes} WHERE id = ?`, ...args, id);
  return {
    /** Returns the first part's id. */
    insert: db.transaction(
      (
        parts: Pick<OutboxRow, 'chatJid' | 'text' | 'kind' | 'sourceFolder' | 'sender'>[],
        createdAt: number,
      ) => {
        const ids = parts.map((p, part) =>
          insert('outbox', 'chatJid text kind sourceFolder sender part createdAt', { ...p, part, createdAt }),
        );
        return Number(ids[0]!.lastInsertRowid);
      },
    ),
    head: (chatJid: string) =>
      all<OutboxRow>(`SELECT * ${PENDING} AND chat_jid = ? ORDER BY id LIMIT 1`, chatJid)[0],
    pendingChats: () => all<{ chatJid: string }>(`SELECT DISTINCT chat_jid ${PENDING}`).map((r) => r.chatJid),
    oldestPendingAnswerAt: (chatJid: string) =>
      value<number | null>(
        `SELECT MIN(created_at) ${PENDING} AND chat_jid = ? AND kind = 'answer'`,
        chatJid,
      ) ?? undefined,
    markSent: (id: number) => set(id, `state = 'sent', error = NULL`),
    markFailed: (id: number, error: string) => set(id, `state = 'failed', error = ?`, error),
    retryAt: (id: number, nextAttemptAt: number, error: string) =>
      set(id, 'attempts = attempts + 1, next_attempt_at = ?, error = ?', nextAttemptAt, error),
    lastId: () => value<number | null>('SELECT MAX(id) FROM outbox') ?? 0,
    /** A folder's agent messages and notices after its last answer and `afterId`. */
    sinceAnswer: (folder: string, afterId: number) =>
      all<{ agent: number; notices: number }>(
        `SELECT COALESCE(SUM(kind = 'agent' AND part = 0), 0) AS agent, COALESCE(SUM(kind = 'notice'), 0) AS notices
         FROM outbox WHERE source_folder = @folder AND id > MAX(@afterId,
           COALESCE((SELECT MAX(id) FROM outbox WHERE source_folder = @folder AND kind = 'answer'), 0))`,
        { folder, afterId },
      )[0]!,
    failed: () => value<number>(`SELECT COUNT(*) FROM outbox WHERE state = 'failed'`),
    // Failed rows stay for `nanoclaw doctor`.
    prune: (sentBefore: number) =>
      void run(`DELETE FROM outbox WHERE state = 'sent' AND created_at < ?`, sentBefore),
  };
}
