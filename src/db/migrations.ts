/**
 * Versioned schema. Each entry runs once, in order, inside a transaction; PRAGMA user_version
 * records how many have run. Never edit a shipped entry: append a new one.
 */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE chats (
    jid TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    last_message_time TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '',
    is_group INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    chat_jid TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    is_from_me INTEGER NOT NULL DEFAULT 0,
    is_bot_message INTEGER NOT NULL DEFAULT 0,
    UNIQUE (chat_jid, id)
  );
  CREATE INDEX messages_chat_seq ON messages (chat_jid, seq);
  CREATE INDEX messages_chat_time ON messages (chat_jid, timestamp);
  CREATE TABLE registered_groups (
    jid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    folder TEXT NOT NULL UNIQUE,
    trigger_word TEXT NOT NULL,
    requires_trigger INTEGER NOT NULL DEFAULT 1,
    is_main INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL,
    container_config TEXT
  );
  CREATE TABLE sessions (
    group_folder TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
  );
  CREATE TABLE router_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE scheduled_tasks (
    id TEXT PRIMARY KEY,
    group_folder TEXT NOT NULL,
    chat_jid TEXT NOT NULL,
    prompt TEXT NOT NULL,
    schedule_type TEXT NOT NULL CHECK (schedule_type IN ('cron', 'interval', 'once')),
    schedule_value TEXT NOT NULL,
    context_mode TEXT NOT NULL DEFAULT 'isolated' CHECK (context_mode IN ('group', 'isolated')),
    next_run TEXT,
    last_run TEXT,
    last_result TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'completed')),
    created_at TEXT NOT NULL
  );
  CREATE INDEX scheduled_tasks_due ON scheduled_tasks (status, next_run);
  CREATE TABLE task_run_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    run_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT
  );
  CREATE INDEX task_run_logs_task ON task_run_logs (task_id, run_at);
  CREATE TABLE usage_daily (
    group_folder TEXT NOT NULL,
    day TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_folder, day)
  );
  `,
];
