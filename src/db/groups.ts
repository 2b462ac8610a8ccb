import type { ContainerConfig, RegisteredGroup } from '../types.js';
import type { Db } from './store.js';

interface GroupRow {
  jid: string;
  name: string;
  folder: string;
  trigger_word: string;
  requires_trigger: number;
  is_main: number;
  added_at: string;
  container_config: string | null;
}

function toGroup(row: GroupRow): RegisteredGroup {
  const group: RegisteredGroup = {
    jid: row.jid,
    name: row.name,
    folder: row.folder,
    trigger: row.trigger_word,
    requiresTrigger: row.requires_trigger === 1,
    isMain: row.is_main === 1,
    addedAt: row.added_at,
  };
  if (row.container_config) group.containerConfig = JSON.parse(row.container_config) as ContainerConfig;
  return group;
}

export class GroupRepo {
  constructor(private readonly db: Db) {}

  all(): RegisteredGroup[] {
    return (this.db.prepare('SELECT * FROM registered_groups ORDER BY added_at').all() as GroupRow[]).map(
      toGroup,
    );
  }

  byJid(jid: string): RegisteredGroup | undefined {
    const row = this.db.prepare('SELECT * FROM registered_groups WHERE jid = ?').get(jid) as
      GroupRow | undefined;
    return row && toGroup(row);
  }

  byFolder(folder: string): RegisteredGroup | undefined {
    const row = this.db.prepare('SELECT * FROM registered_groups WHERE folder = ?').get(folder) as
      GroupRow | undefined;
    return row && toGroup(row);
  }

  main(): RegisteredGroup | undefined {
    const row = this.db.prepare('SELECT * FROM registered_groups WHERE is_main = 1 LIMIT 1').get() as
      GroupRow | undefined;
    return row && toGroup(row);
  }

  /** Inserts or replaces the group with this jid. Making a group main demotes any other main. */
  upsert(group: RegisteredGroup): void {
    this.db.transaction(() => {
      if (group.isMain)
        this.db.prepare('UPDATE registered_groups SET is_main = 0 WHERE jid != ?').run(group.jid);
      this.db
        .prepare(
          `INSERT INTO registered_groups (jid, name, folder, trigger_word, requires_trigger, is_main, added_at, container_config)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(jid) DO UPDATE SET name = excluded.name, folder = excluded.folder,
             trigger_word = excluded.trigger_word, requires_trigger = excluded.requires_trigger,
             is_main = excluded.is_main, container_config = excluded.container_config`,
        )
        .run(
          group.jid,
          group.name,
          group.folder,
          group.trigger,
          group.requiresTrigger ? 1 : 0,
          group.isMain ? 1 : 0,
          group.addedAt,
          group.containerConfig ? JSON.stringify(group.containerConfig) : null,
        );
    })();
  }
}
