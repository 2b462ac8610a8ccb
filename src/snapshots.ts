import type { Config } from './config.js';
import { GROUPS_SNAPSHOT, isValidFolder } from './contract/ipc.js';
import type { Store } from './db/store.js';
import { writeSnapshot } from './ipc/to-agent.js';
import { logFailure } from './logger.js';
import { writeTaskSnapshot } from './scheduler/task-snapshot.js';

/** Inbox files; available_groups.json for main only: other groups must not learn what exists. */
export class Snapshots {
  constructor(
    private readonly config: Pick<Config, 'ipcDir'>,
    private readonly store: Store,
  ) {}

  tasks(folder?: string): void {
    const tasks = this.store.tasks.all();
    for (const group of this.store.groups.all())
      if ((!folder || group.folder === folder || group.isMain) && isValidFolder(group.folder))
        logFailure('cannot write task snapshot', { group: group.folder }, () =>
          writeTaskSnapshot(this.config, group, tasks),
        );
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
    const lastSync = new Date().toISOString();
    logFailure('cannot write group snapshot', { group: main.folder }, () =>
      writeSnapshot(this.config, main.folder, GROUPS_SNAPSHOT, { groups, lastSync }),
    );
  }
}
