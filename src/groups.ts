import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { FOLDER_RULE, isValidFolder } from './contract/ipc.js';
import type { Store } from './db/store.js';
import { withSafeDir } from './safe-fs.js';
import type { RegisteredGroup } from './types.js';

export type GroupRegistration = Pick<RegisteredGroup, 'jid' | 'name' | 'folder'> &
  Partial<Pick<RegisteredGroup, 'trigger' | 'requiresTrigger' | 'isMain'>>;

export function registerGroup(
  store: Store,
  config: Config,
  { jid, name, folder, trigger, requiresTrigger = true, isMain = false }: GroupRegistration,
): { ok: true; group: RegisteredGroup } | { ok: false; error: string } {
  const owner = store.groups.byFolder(folder)?.jid;
  const error =
    (!jid.trim() && 'jid must not be empty') ||
    (!name.trim() && 'name must not be empty') ||
    (!isValidFolder(folder) && `invalid folder '${folder}': ${FOLDER_RULE}`) ||
    (owner && owner !== jid && `folder '${folder}' is already used by chat '${owner}'`);
  if (error) return { ok: false, error };
  const { addedAt = new Date().toISOString(), containerConfig } = store.groups.byJid(jid) ?? {};
  const group = {
    ...{ jid, name, folder, requiresTrigger, isMain, addedAt },
    trigger: trigger?.trim() || `@${config.assistantName}`,
    ...(containerConfig && { containerConfig }),
  };
  store.groups.upsert(group);
  ensureGroupFolder(config, group);
  return { ok: true, group };
}

/** The group folder is the agent's: a planted link (even a dangling one) at CLAUDE.md is left alone. */
export function ensureGroupFolder(config: Config, group: RegisteredGroup) {
  // A template inside groupsDir is an agent-writable memory file itself: never read.
  const template = (name: string) => {
    const file = path.join(config.projectRoot, 'groups', name, 'CLAUDE.md');
    return !file.startsWith(`${config.groupsDir}/`) && fs.existsSync(file)
      ? fs.readFileSync(file)
      : undefined;
  };
  const memory = `# ${group.name}\n\nMemory for this chat. ${config.assistantName} reads it at the start of every run.\n`;
  withSafeDir(config.groupsDir, [group.folder], { create: true }, (dir) => {
    dir.createFile('CLAUDE.md', (group.isMain && template('main')) || memory);
    dir.subdir('logs', { create: true, replace: true }).close();
  });
  const global = template('global');
  withSafeDir(
    config.groupsDir,
    ['global'],
    { create: true },
    (dir) => global && dir.createFile('CLAUDE.md', global),
  );
}

export function ensureMainGroup(store: Store, config: Config) {
  if (store.groups.main() || store.groups.byFolder('main')) return;
  const main = { jid: 'local:main', name: 'Main (local)', folder: 'main' };
  registerGroup(store, config, { ...main, requiresTrigger: false, isMain: true });
}
