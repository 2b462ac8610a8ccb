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

  tasks(folder?: string) {
    const tasks = this.store.tasks.all();
    for (const group of this.store.groups.all())
      if ((!folder || group.folder === folder || group.isMain) && isValidFolder(group.folder))
        logFailure('cannot write task snapshot', { group: group.folder }, () =>
          writeTaskSnapshot(this.config, group, tasks),
        );
  }

  groups() {
    const main = this.store.groups.main();
    if (!main) return;
    const groups = this.store.messages.listChats().map(({ lastMessageTime, ...chat }) => ({
      ...chat,
      lastActivity: lastMessageTime,
      isRegistered: !!this.store.groups.byJid(chat.jid),
    }));
    const lastSync = new Date().toISOString();
    logFailure('cannot write group snapshot', { group: main.folder }, () =>
      writeSnapshot(this.config, main.folder, GROUPS_SNAPSHOT, { groups, lastSync }),
    );
  }
}
