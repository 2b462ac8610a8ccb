import type { Db } from './store.js';

/** Key/value facts kept across restarts (cursors), and each group's session. */
export class StateRepo {
  constructor(private readonly db: Db) {}

  get(key: string): string | undefined {
    return this.db.prepare('SELECT value FROM router_state WHERE key = ?').pluck().get(key) as
      string | undefined;
  }

  set(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO router_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  getSession(groupFolder: string): string | undefined {
    const sql = 'SELECT session_id FROM sessions WHERE group_folder = ?';
    return this.db.prepare(sql).pluck().get(groupFolder) as string | undefined;
  }

  setSession(groupFolder: string, sessionId: string): void {
    this.db
      .prepare(
        `INSERT INTO sessions (group_folder, session_id) VALUES (?, ?)
         ON CONFLICT(group_folder) DO UPDATE SET session_id = excluded.session_id`,
      )
      .run(groupFolder, sessionId);
  }
}
