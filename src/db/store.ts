import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GroupRepo } from './group-repo.js';
import { MessageRepo } from './message-repo.js';
import { OutboxRepo } from './outbox-repo.js';
import { StateRepo } from './state-repo.js';
import { TaskRepo } from './task-repo.js';
import { UsageRepo } from './usage-repo.js';

export type Db = Database.Database;

/** Run once each, in order, in a transaction; user_version counts them. Never edit a shipped entry: append. */
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

/** A row's snake_case columns as the camelCase fields they are named for. */
export function camel<T>(row: unknown): T {
  const entries = Object.entries(row as object);
  return Object.fromEntries(
    entries.map(([k, v]) => [k.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), v]),
  ) as T;
}

/** The one SQLite file, a repository per table. Parameterised queries only. */
export class Store {
  readonly messages: MessageRepo;
  readonly groups: GroupRepo;
  readonly tasks: TaskRepo;
  readonly state: StateRepo;
  readonly usage: UsageRepo;
  readonly outbox: OutboxRepo;

  constructor(readonly db: Db) {
    this.messages = new MessageRepo(db);
    this.groups = new GroupRepo(db);
    this.tasks = new TaskRepo(db);
    this.state = new StateRepo(db);
    this.usage = new UsageRepo(db);
    this.outbox = new OutboxRepo(db);
  }

  close(): void {
    this.db.close();
  }
}

export function openStore(dbPath: string): Store {
  if (dbPath !== ':memory:') fs.mkdirSync(path.dirname(dbPath), { recursive: true });
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  const current = db.pragma('user_version', { simple: true }) as number;
  MIGRATIONS.slice(current).forEach((sql, i) =>
    db.transaction(() => db.exec(sql).pragma(`user_version = ${current + i + 1}`))(),
  );
  return new Store(db);
}
