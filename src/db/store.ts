import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { groupRepo } from './group-repo.js';
import { messageRepo } from './message-repo.js';
import { outboxRepo } from './outbox-repo.js';
import { taskRepo } from './task-repo.js';

export type Db = Database.Database;

// Run once each, in order; user_version counts them. Never edit a shipped entry: append.
const MIGRATIONS = [
  `CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT, last_message_time TEXT, channel TEXT, is_group INTEGER);
  CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, chat_jid TEXT, sender TEXT, sender_name TEXT,
    content TEXT, timestamp TEXT, is_from_me INTEGER, is_bot_message INTEGER, UNIQUE (chat_jid, id));
  CREATE INDEX messages_chat_seq ON messages (chat_jid, seq);
  CREATE INDEX messages_chat_time ON messages (chat_jid, timestamp);
  CREATE TABLE registered_groups (jid TEXT PRIMARY KEY, name TEXT, folder TEXT UNIQUE, trigger_word TEXT,
    requires_trigger INTEGER, is_main INTEGER, added_at TEXT, container_config TEXT);
  CREATE TABLE sessions (group_folder TEXT PRIMARY KEY, session_id TEXT);
  CREATE TABLE router_state (key TEXT PRIMARY KEY, value TEXT);
  CREATE TABLE scheduled_tasks (id TEXT PRIMARY KEY, group_folder TEXT, chat_jid TEXT, prompt TEXT, schedule_type TEXT,
    schedule_value TEXT, context_mode TEXT, next_run TEXT, last_run TEXT, last_result TEXT, status TEXT, created_at TEXT);
  CREATE INDEX scheduled_tasks_due ON scheduled_tasks (status, next_run);
  CREATE TABLE task_run_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT, run_at TEXT, duration_ms INTEGER,
    status TEXT, result TEXT, error TEXT);
  CREATE INDEX task_run_logs_task ON task_run_logs (task_id, run_at);
  CREATE TABLE usage_daily (group_folder TEXT, day TEXT, input_tokens INTEGER, output_tokens INTEGER, requests INTEGER,
    PRIMARY KEY (group_folder, day));`,
  `CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, chat_jid TEXT, text TEXT, kind TEXT, source_folder TEXT,
    sender TEXT, part INTEGER, created_at INTEGER, state TEXT DEFAULT 'pending', attempts INTEGER DEFAULT 0,
    next_attempt_at INTEGER DEFAULT 0, error TEXT);
  CREATE INDEX outbox_pending ON outbox (state, chat_jid, id);
  CREATE INDEX outbox_source ON outbox (source_folder, kind, id);`,
];

const field = (column: string) =>
  [column.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), /^(is|requires)_/.test(column)] as const;
const fields = new Map<string, ReturnType<typeof field>>();
/** snake_case columns → camelCase fields, `is_*`/`requires_*` → booleans. */
const camel = <T>(row: object) => {
  const out: Record<string, unknown> = {};
  for (const [column, v] of Object.entries(row)) {
    const [name, flag] = fields.get(column) ?? fields.set(column, field(column)).get(column)!;
    out[name] = flag ? v === 1 : v;
  }
  return out as T;
};

const bind = (arg: unknown) =>
  arg && typeof arg === 'object'
    ? Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, typeof v === 'boolean' ? +v : v]))
    : arg;

export const snake = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// Preparing costs more than running a small statement.
const prepared = new WeakMap<Db, Map<string, Database.Statement>>();

export function query(db: Db) {
  const cache = prepared.get(db) ?? prepared.set(db, new Map()).get(db)!;
  const stmt = (sql: string, pluck = false) => {
    let s = cache.get(pluck + sql);
    if (!s) cache.set(pluck + sql, (s = pluck ? db.prepare(sql).pluck() : db.prepare(sql)));
    return s;
  };
  const run = (sql: string, ...args: unknown[]) => stmt(sql).run(...args.map(bind));
  return {
    run,
    all: <T>(sql: string, ...args: unknown[]) => (stmt(sql).all(...args.map(bind)) as object[]).map(camel<T>),
    value: <T>(sql: string, ...args: unknown[]) => stmt(sql, true).get(...args) as T,
    insert: (table: string, columns: string, row: object, onConflict = '') => {
      const names = columns.split(' ');
      return run(
        `INSERT INTO ${table} (${names.map(snake)}) VALUES (${names.map((f) => `@${f}`)}) ${onConflict}`,
        row,
      );
    },
  };
}

function stateRepo(db: Db) {
  const { run, value } = query(db);
  const upsert = (table: string) => (k: string, v: string) =>
    void run(`REPLACE INTO ${table} VALUES (?, ?)`, k, v);
  return {
    get: (key: string) => value<string | undefined>('SELECT value FROM router_state WHERE key = ?', key),
    set: upsert('router_state'),
    getSession: (folder: string) =>
      value<string | undefined>('SELECT session_id FROM sessions WHERE group_folder = ?', folder),
    setSession: upsert('sessions'),
  };
}

function usageRepo(db: Db) {
  const { run, all, value } = query(db);
  return {
    add: (...args: [groupFolder: string, day: string, input: number, output: number]) =>
      void run(
        `INSERT INTO usage_daily VALUES (?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET requests = requests + 1,
           input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens`,
        ...args,
      ),
    forDay: (day: string) =>
      all<{ groupFolder: string; day: string; inputTokens: number; outputTokens: number; requests: number }>(
        'SELECT * FROM usage_daily WHERE day = ? ORDER BY group_folder',
        day,
      ),
    tokensFor: (...args: [groupFolder: string, day: string]) =>
      value<number | undefined>(
        'SELECT input_tokens + output_tokens FROM usage_daily WHERE group_folder = ? AND day = ?',
        ...args,
      ) ?? 0,
  };
}

export class Store {
  constructor(
    readonly db: Db,
    readonly messages = messageRepo(db),
    readonly groups = groupRepo(db),
    readonly tasks = taskRepo(db),
    readonly state = stateRepo(db),
    readonly usage = usageRepo(db),
    readonly outbox = outboxRepo(db),
  ) {}
  close = () => this.db.close();
}

export function openStore(dbPath: string): Store {
  if (dbPath !== ':memory:') fs.mkdirSync(path.dirname(dbPath), { recursive: true });
  const db = new Database(dbPath);
  for (const p of ['journal_mode = WAL', 'synchronous = NORMAL', 'busy_timeout = 5000']) db.pragma(p);
  const current = db.pragma('user_version', { simple: true }) as number;
  MIGRATIONS.slice(current).forEach((sql, i) =>
    db.transaction(() => db.exec(sql).pragma(`user_version = ${current + i + 1}`))(),
  );
  return new Store(db);
}
