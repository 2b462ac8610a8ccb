import type { RegisteredGroup } from '../types.js';
import { query, type Db } from './store.js';

type Row = Omit<RegisteredGroup, 'trigger' | 'containerConfig'> & {
  triggerWord: string;
  containerConfig: string | null;
};
const COLUMNS = 'jid name folder triggerWord requiresTrigger isMain addedAt containerConfig';

export function groupRepo(db: Db) {
  const { all, insert } = query(db);
  const where = (clause: string, ...args: unknown[]) =>
    all<Row>(`SELECT * FROM registered_groups ${clause}`, ...args).map(
      ({ triggerWord, containerConfig, ...group }): RegisteredGroup => ({
        ...group,
        trigger: triggerWord,
        ...(containerConfig && { containerConfig: JSON.parse(containerConfig) }),
      }),
    );
  return {
    all: () => where('ORDER BY added_at'),
    byJid: (jid: string) => where('WHERE jid = ?', jid)[0],
    byFolder: (folder: string) => where('WHERE folder = ?', folder)[0],
    /** The first main chat; the owner may have several (e.g. WhatsApp's self-chat). */
    main: () => where('WHERE is_main = 1 ORDER BY added_at LIMIT 1')[0],
    upsert(group: RegisteredGroup): void {
      const config = group.containerConfig && JSON.stringify(group.containerConfig);
      const update = 'name folder trigger_word requires_trigger is_main container_config'
        .split(' ')
        .map((c) => `${c} = excluded.${c}`);
      // added_at stays the first registration's.
      insert(
        'registered_groups',
        COLUMNS,
        { ...group, triggerWord: group.trigger, containerConfig: config ?? null },
        `ON CONFLICT(jid) DO UPDATE SET ${update}`,
      );
    },
  };
}
