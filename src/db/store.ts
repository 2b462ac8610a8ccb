import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { groupRepo } from './group-repo.js';
import { messageRepo } from './message-repo.js';
import { outboxRepo } from './outbox-repo.js';
import { stateRepo } from './state-repo.js';
import { taskRepo } from './task-repo.js';
import { usageRepo } from './usage-repo.js';

export type Db = Database.Database;

// Run once each, in order; user_version counts them. Never edit a shipped entry: append.
const MIGRATIONS = [
  `CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', last_message_time TEXT NOT NULL DEFAULT '',
     channel TEXT NOT NULL DEFAULT '', is_group INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, chat_jid TEXT NOT NULL,
     sender TEXT NOT NULL, sender_name TEXT NOT NULL, content TEXT NOT NULL, timestamp TEXT NOT NULL,
     is_from_me INTEGER NOT NULL DEFAULT 0, is_bot_message INTEGER NOT NULL DEFAULT 0, UNIQUE (chat_jid, id));
   CREATE INDEX messages_chat_seq ON messages (chat_jid, seq);
   CREATE INDEX messages_chat_time ON messages (chat_jid, timestamp);
   CREATE TABLE registered_groups (jid TEXT PRIMARY KEY, name TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
     trigger_word TEXT NOT NULL, requires_trigger INTEGER NOT NULL DEFAULT 1, is_main INTEGER NOT NULL DEFAULT 0,
     added_at TEXT NOT NULL, container_config TEXT);
   CREATE TABLE sessions (group_folder TEXT PRIMARY KEY, session_id TEXT NOT NULL);
   CREATE TABLE router_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE scheduled_tasks (id TEXT PRIMARY KEY, group_folder TEXT NOT NULL, chat_jid TEXT NOT NULL,
     prompt TEXT NOT NULL, schedule_type TEXT NOT NULL CHECK (schedule_type IN ('cron', 'interval', 'once')),
     schedule_value TEXT NOT NULL,
     context_mode TEXT NOT NULL DEFAULT 'isolated' CHECK (context_mode IN ('group', 'isolated')),
     next_run TEXT, last_run TEXT, last_result TEXT,
     status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'completed')), created_at TEXT NOT NULL);
   CREATE INDEX scheduled_tasks_due ON scheduled_tasks (status, next_run);
   CREATE TABLE task_run_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, run_at TEXT NOT NULL,
     duration_ms INTEGER NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT);
   CREATE INDEX task_run_logs_task ON task_run_logs (task_id, run_at);
   CREATE TABLE usage_daily (group_folder TEXT NOT NULL, day TEXT NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0,
     output_tokens INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (group_folder, day));`,
  `CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, chat_jid TEXT NOT NULL, text TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('answer', 'agent', 'notice')), source_folder TEXT, sender TEXT,
     part INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
     state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
     attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL DEFAULT 0, error TEXT);
   CREATE INDEX outbox_pending ON outbox (state, chat_jid, id);
   CREATE INDEX outbox_source ON outbox (source_folder, kind, id);`,
];

const fieldNames = new Map<string, [name: string, flag: boolean]>();
const fieldOf = (column: string) => {
  let field = fieldNames.get(column);
  if (!field)
    fieldNames.set(
      column,
      (field = [column.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), /^(is|requires)_/.test(column)]),
    );
  return field;
};

/** Row to fields: snake_case columns become camelCase, `is_*`/`requires_*` flags booleans. */
export const camel = <T>(row: unknown) => {
  const out: Record<string, unknown> = {};
  for (const [column, v] of Object.entries(row as object)) {
    const [name, flag] = fieldOf(column);
    out[name] = flag ? v === 1 : v;
  }
  return out as T;
};

const bind = (arg: unknown) =>
  arg && typeof arg === 'object'
    ? Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, typeof v === 'boolean' ? +v : v]))
    : arg;

export const snake = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// Preparing costs more than running a small statement: each SQL text is prepared once per database.
const prepared = new WeakMap<Db, Map<string, Database.Statement>>();

/** Parameterised queries only; booleans are bound as 0/1. */
export function query(db: Db) {
  const cache = prepared.get(db) ?? prepared.set(db, new Map()).get(db)!;
  const stmt = (sql: string, pluck = false) => {
    const key = pluck ? `pluck:${sql}` : sql;
    let s = cache.get(key);
    if (!s) cache.set(key, (s = pluck ? db.prepare(sql).pluck() : db.prepare(sql)));
    return s;
  };
  const run = (sql: string, ...args: unknown[]) => stmt(sql).run(...args.map(bind));
  return {
    run,
    all: <T>(sql: string, ...args: unknown[]) =>
      stmt(sql)
        .all(...args.map(bind))
        .map(camel<T>),
    value: <T>(sql: string, ...args: unknown[]) => stmt(sql, true).get(...args) as T,
    insert(table: string, fields: string, row: object, onConflict = '') {
      const names = fields.split(' ');
      return run(
        `INSERT INTO ${table} (${names.map(snake)}) VALUES (${names.map((f) => `@${f}`)}) ${onConflict}`,
        row,
      );
    },
  };
}

export class Store {
  readonly messages;
  readonly groups;
  readonly tasks;
  readonly state;
  readonly usage;
  readonly outbox;
  constructor(readonly db: Db) {
    this.messages = messageRepo(db);
    this.groups = groupRepo(db);
    this.tasks = taskRepo(db);
    this.state = stateRepo(db);
    this.usage = usageRepo(db);
    this.outbox = outboxRepo(db);
  }
  close = () => this.db.close();
}

export function openStore(dbPath: string): Store {
  if (dbPath !== ':memory:') fs.mkdirSync(path.dirname(dbPath), { recursive: true });
  const db = new Database(dbPath);
  for (const p of ['journal_mode = WAL', 'synchronous = NORMAL', 'busy_timeout = 5000', 'foreign_keys = ON'])
    db.pragma(p);
  const current = db.pragma('user_version', { simple: true }) as number;
  MIGRATIONS.slice(current).forEach((sql, i) =>
    db.transaction(() => db.exec(sql).pragma(`user_version = ${current + i + 1}`))(),
  );
  return new Store(db);
}
