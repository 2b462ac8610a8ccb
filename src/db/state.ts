import type { Db } from './store.js';

/** Small key/value facts the router keeps across restarts (cursors, sessions). */
export class StateRepo {
  constructor(private readonly db: Db) {}

  get(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM router_state WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  }

  set(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO router_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  getSession(groupFolder: string): string | undefined {
    const row = this.db.prepare('SELECT session_id FROM sessions WHERE group_folder = ?').get(groupFolder) as
      { session_id: string } | undefined;
    return row?.session_id;
  }

  setSession(groupFolder: string, sessionId: string): void {
    this.db
      .prepare(
        `INSERT INTO sessions (group_folder, session_id) VALUES (?, ?)
         ON CONFLICT(group_folder) DO UPDATE SET session_id = excluded.session_id`,
      )
      .run(groupFolder, sessionId);
  }

  clearSession(groupFolder: string): void {
    this.db.prepare('DELETE FROM sessions WHERE group_folder = ?').run(groupFolder);
  }
}
