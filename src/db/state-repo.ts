import { query, type Db } from './store.js';

export function stateRepo(db: Db) {
  const { run, value } = query(db);
  const upsert = (table: string, key: string, column: string) => (k: string, v: string) =>
    void run(
      `INSERT INTO ${table} (${key}, ${column}) VALUES (?, ?) ON CONFLICT(${key}) DO UPDATE SET ${column} = excluded.${column}`,
      k,
      v,
    );
  return {
    get: (key: string) => value<string | undefined>('SELECT value FROM router_state WHERE key = ?', key),
    set: upsert('router_state', 'key', 'value'),
    getSession: (folder: string) =>
      value<string | undefined>('SELECT session_id FROM sessions WHERE group_folder = ?', folder),
    setSession: upsert('sessions', 'group_folder', 'session_id'),
  };
}
