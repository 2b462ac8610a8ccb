import type { RegisteredGroup } from '../types.js';
import { camel, type Db } from './store.js';

type Row = Record<string, unknown>;
const toGroup = ({ trigger_word, container_config, ...row }: Row): RegisteredGroup => ({
  ...camel<RegisteredGroup>(row),
  trigger: trigger_word as string,
  requiresTrigger: row.requires_trigger === 1,
  isMain: row.is_main === 1,
  ...(typeof container_config === 'string' && { containerConfig: JSON.parse(container_config) }),
});

export class GroupRepo {
  constructor(private readonly db: Db) {}

  private where(clause: string, ...args: unknown[]): RegisteredGroup[] {
    return (this.db.prepare(`SELECT * FROM registered_groups ${clause}`).all(...args) as Row[]).map(toGroup);
  }

  all(): RegisteredGroup[] {
    return this.where('ORDER BY added_at');
  }

  byJid(jid: string): RegisteredGroup | undefined {
    return this.where('WHERE jid = ?', jid)[0];
  }

  byFolder(folder: string): RegisteredGroup | undefined {
    return this.where('WHERE folder = ?', folder)[0];
  }

  /** The first main chat (local:main on a fresh home); the owner may have several, e.g. WhatsApp's self-chat. */
  main(): RegisteredGroup | undefined {
    return this.where('WHERE is_main = 1 ORDER BY added_at LIMIT 1')[0];
  }

  upsert(group: RegisteredGroup): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO registered_groups (jid, name, folder, trigger_word, requires_trigger, is_main, added_at, container_config)
           VALUES (@jid, @name, @folder, @trigger, @requiresTrigger, @isMain, @addedAt, @containerConfig)
           ON CONFLICT(jid) DO UPDATE SET name = excluded.name, folder = excluded.folder,
             trigger_word = excluded.trigger_word, requires_trigger = excluded.requires_trigger,
             is_main = excluded.is_main, container_config = excluded.container_config`,
        )
        .run({
          ...group,
          requiresTrigger: group.requiresTrigger ? 1 : 0,
          isMain: group.isMain ? 1 : 0,
          containerConfig: group.containerConfig ? JSON.stringify(group.containerConfig) : null,
        });
    })();
  }
}
