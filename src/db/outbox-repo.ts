import { camel, type Db } from './store.js';

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

export type NewOutboxRow = Pick<OutboxRow, 'chatJid' | 'text' | 'kind' | 'sourceFolder' | 'sender'>;

/** Every outbound text, durable from before its send until it is sent or fails for good. */
export class OutboxRepo {
  constructor(private readonly db: Db) {}

  /** The parts of one message, in order, in one transaction; returns the first part's id. */
  insert(parts: NewOutboxRow[], now: number): number {
    const stmt = this.db.prepare(
      `INSERT INTO outbox (chat_jid, text, kind, source_folder, sender, part, created_at)
       VALUES (@chatJid, @text, @kind, @sourceFolder, @sender, @part, @now)`,
    );
    return this.db.transaction(() =>
      parts.map((p, part) => Number(stmt.run({ ...p, part, now }).lastInsertRowid)),
    )()[0]!;
  }

  head(chatJid: string): OutboxRow | undefined {
    const row = this.db
      .prepare(`SELECT * FROM outbox WHERE state = 'pending' AND chat_jid = ? ORDER BY id LIMIT 1`)
      .get(chatJid);
    return row === undefined ? undefined : camel<OutboxRow>(row);
  }

  pendingChats(): string[] {
    return this.db
      .prepare(`SELECT DISTINCT chat_jid FROM outbox WHERE state = 'pending'`)
      .pluck()
      .all() as string[];
  }

  oldestPendingAnswerAt(chatJid: string): number | undefined {
    const sql = `SELECT MIN(created_at) FROM outbox WHERE state = 'pending' AND chat_jid = ? AND kind = 'answer'`;
    return (this.db.prepare(sql).pluck().get(chatJid) as number | null) ?? undefined;
  }

  markSent(id: number): void {
    this.db.prepare(`UPDATE outbox SET state = 'sent', error = NULL WHERE id = ?`).run(id);
  }

  markFailed(id: number, error: string): void {
    this.db.prepare(`UPDATE outbox SET state = 'failed', error = ? WHERE id = ?`).run(error, id);
  }

  retryAt(id: number, nextAttemptAt: number, error: string): void {
    this.db
      .prepare(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, error = ? WHERE id = ?`)
      .run(nextAttemptAt, error, id);
  }

  lastId(): number {
    return (this.db.prepare('SELECT MAX(id) FROM outbox').pluck().get() as number | null) ?? 0;
  }

  /** A folder's agent messages (first parts) and notices after its last answer and after `afterId`. */
  sinceAnswer(folder: string, afterId: number): { agent: number; notices: number } {
    const sql = `SELECT COALESCE(SUM(kind = 'agent' AND part = 0), 0) AS agent, COALESCE(SUM(kind = 'notice'), 0) AS notices
      FROM outbox WHERE source_folder = @folder AND id > MAX(@afterId,
        COALESCE((SELECT MAX(id) FROM outbox WHERE source_folder = @folder AND kind = 'answer'), 0))`;
    return this.db.prepare(sql).get({ folder, afterId }) as { agent: number; notices: number };
  }

  failed(limit: number): { count: number; newest: Array<{ chatJid: string; error: string }> } {
    const count = this.db
      .prepare(`SELECT COUNT(*) FROM outbox WHERE state = 'failed'`)
      .pluck()
      .get() as number;
    const rows = this.db
      .prepare(`SELECT chat_jid, error FROM outbox WHERE state = 'failed' ORDER BY id DESC LIMIT ?`)
      .all(limit);
    return { count, newest: rows.map((r) => camel<{ chatJid: string; error: string }>(r)) };
  }

  /** Sent rows are history's business once sent; failed ones stay for `nanoclaw doctor`. */
  prune(sentBefore: number): void {
    this.db.prepare(`DELETE FROM outbox WHERE state = 'sent' AND created_at < ?`).run(sentBefore);
  }
}
