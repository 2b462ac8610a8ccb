import fs from 'node:fs';
import path from 'node:path';
import type { Store } from './db/store.js';
import type { RegisteredGroup } from './types.js';

/**
 * data/ipc/<main>/available_groups.json: the chats the channels know, so the main agent can offer
 * to register one. Only main gets it: other groups must not learn what else exists.
 */
export function writeAvailableGroups(ipcDir: string, main: RegisteredGroup, store: Store): void {
  const registered = new Set(store.groups.all().map((g) => g.jid));
  const groups = store.messages.listChats().map((c) => ({
    jid: c.jid,
    name: c.name,
    channel: c.channel,
    isGroup: c.isGroup,
    lastActivity: c.lastMessageTime,
    isRegistered: registered.has(c.jid),
  }));
  const dir = path.join(ipcDir, main.folder);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'available_groups.json');
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ groups, lastSync: new Date().toISOString() }, null, 2));
  fs.renameSync(tmp, file);
}
