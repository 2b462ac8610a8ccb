import type { RegisteredGroup } from '../types.js';
import { query, type Db } from './store.js';

type Row = Omit<RegisteredGroup, 'trigger' | 'containerConfig'> & {
  triggerWord: string;
  containerConfig: string;
};
const UPDATE = 'name folder trigger_word requires_trigger is_main container_config'.split(' ');

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
    main: () => where('WHERE is_main = 1 ORDER BY added_at LIMIT 1')[0],
    // added_at stays the first registration's.
    upsert: ({ trigger, containerConfig, ...group }: RegisteredGroup) =>
      void insert(
        'registered_groups',
        'jid name folder triggerWord requiresTrigger isMain addedAt containerConfig',
        {
          ...group,
          triggerWord: trigger,
          containerConfig: containerConfig ? JSON.stringify(containerConfig) : null,
        },
        `ON CONFLICT(jid) DO UPDATE SET ${UPDATE.map((c) => `${c} = excluded.${c}`)}`,
      ),
  };
}
