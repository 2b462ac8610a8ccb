import type { Config } from './config.js';
import { GROUPS_SNAPSHOT, isValidFolder } from './contract/ipc.js';
import type { Store } from './db/store.js';
import { writeSnapshot } from './ipc/to-agent.js';
import { logger } from './logger.js';
import { writeTaskSnapshot } from './scheduler/task-snapshot.js';

/** Inbox files; available_groups.json for main only: other groups must not learn what exists. */
export class Snapshots {
  constructor(
    private readonly config: Pick<Config, 'ipcDir'>,
    private readonly store: Store,
  ) {}

  /** For the changed group and main; for all when no folder is given. */
  tasks(folder?: string): void {
    const tasks = this.store.tasks.all();
    for (const group of this.store.groups.all())
      try {
        if ((!folder || group.folder === folder || group.isMain) && isValidFolder(group.folder))
          writeTaskSnapshot(this.config, group, tasks);
      } catch (err) {
        logger.warn({ group: group.folder, err }, 'cannot write task snapshot');
      }
  }

  groups(): void {
    const main = this.store.groups.main();
    if (!main) return;
    const registered = new Set(this.store.groups.all().map((g) => g.jid));
    const groups = this.store.messages.listChats().map(({ lastMessageTime, ...chat }) => ({
      ...chat,
      lastActivity: lastMessageTime,
      isRegistered: registered.has(chat.jid),
    }));
    try {
      writeSnapshot(this.config, main.folder, GROUPS_SNAPSHOT, {
        groups,
        lastSync: new Date().toISOString(),
      });
    } catch (err) {
      logger.warn({ group: main.folder, err }, 'cannot write group snapshot');
    }
  }
}
