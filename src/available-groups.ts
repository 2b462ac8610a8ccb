import type { Config } from './config.js';
import type { Store } from './db/store.js';
import { writeSnapshot } from './ipc/to-agent.js';
import type { RegisteredGroup } from './types.js';

/**
 * available_groups.json in main's host-to-agent IPC part: the chats the channels know, so the main agent can offer
 * to register one. Only main gets it: other groups must not learn what else exists.
 */
export function writeAvailableGroups(
  config: Pick<Config, 'ipcDir'>,
  main: RegisteredGroup,
  store: Store,
): void {
  const registered = new Set(store.groups.all().map((g) => g.jid));
  const groups = store.messages.listChats().map((c) => ({
    jid: c.jid,
    name: c.name,
    channel: c.channel,
    isGroup: c.isGroup,
    lastActivity: c.lastMessageTime,
    isRegistered: registered.has(c.jid),
  }));
  writeSnapshot(config, main.folder, 'available_groups.json', {
    groups,
    lastSync: new Date().toISOString(),
  });
}
