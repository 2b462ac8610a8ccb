import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';
import { MessageRepo } from './messages.js';
import { GroupRepo } from './groups.js';
import { TaskRepo } from './tasks.js';
import { StateRepo } from './state.js';
import { UsageRepo } from './usage.js';

export type Db = Database.Database;

/** The one SQLite file, split into small repositories by table. Parameterised queries only. */
export class Store {
  readonly messages: MessageRepo;
  readonly groups: GroupRepo;
  readonly tasks: TaskRepo;
  readonly state: StateRepo;
  readonly usage: UsageRepo;

  constructor(readonly db: Db) {
    this.messages = new MessageRepo(db);
    this.groups = new GroupRepo(db);
    this.tasks = new TaskRepo(db);
    this.state = new StateRepo(db);
    this.usage = new UsageRepo(db);
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
  migrate(db);
  return new Store(db);
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
