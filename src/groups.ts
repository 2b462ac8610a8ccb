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
  input: GroupRegistration,
): { ok: true; group: RegisteredGroup } | { ok: false; error: string } {
  const owner = store.groups.byFolder(input.folder)?.jid;
  const error =
    (!input.jid.trim() && 'jid must not be empty') ||
    (!input.name.trim() && 'name must not be empty') ||
    (!isValidFolder(input.folder) && `invalid folder '${input.folder}': ${FOLDER_RULE}`) ||
    (owner && owner !== input.jid && `folder '${input.folder}' is already used by chat '${owner}'`);
  if (error) return { ok: false, error };
  const existing = store.groups.byJid(input.jid);
  const group: RegisteredGroup = {
    jid: input.jid,
    name: input.name,
    folder: input.folder,
    trigger: input.trigger?.trim() || `@${config.assistantName}`,
    requiresTrigger: input.requiresTrigger ?? true,
    isMain: input.isMain ?? false,
    addedAt: existing?.addedAt ?? new Date().toISOString(),
    ...(existing?.containerConfig && { containerConfig: existing.containerConfig }),
  };
  store.groups.upsert(group);
  ensureGroupFolder(config, group);
  return { ok: true, group };
}

/** The group folder is the agent's: a planted link (even a dangling one) at CLAUDE.md is left alone. */
export function ensureGroupFolder(config: Config, group: RegisteredGroup): void {
  const template = (name: string) => path.join(config.projectRoot, 'groups', name, 'CLAUDE.md');
  // main's template, unless it is main's own (agent-writable) memory file.
  const main =
    group.isMain && !template('main').startsWith(`${config.groupsDir}/`) && fs.existsSync(template('main'));
  withSafeDir(config.groupsDir, [group.folder], { create: true }, (dir) => {
    if (!dir.lstat('CLAUDE.md'))
      dir.createFile(
        'CLAUDE.md',
        main
          ? fs.readFileSync(template('main'), 'utf8')
          : `# ${group.name}\n\nMemory for this chat. ${config.assistantName} reads it at the start of every run.\n`,
      );
    dir.subdir('logs', { create: true, replace: true }).close();
  });
  const memory = path.join(config.groupsDir, 'global', 'CLAUDE.md');
  fs.mkdirSync(path.dirname(memory), { recursive: true });
  if (!fs.existsSync(memory) && fs.existsSync(template('global')) && template('global') !== memory)
    fs.copyFileSync(template('global'), memory);
}

export function ensureMainGroup(store: Store, config: Config): void {
  if (store.groups.main() || store.groups.byFolder('main')) return;
  registerGroup(store, config, {
    jid: 'local:main',
    name: 'Main (local)',
    folder: 'main',
    requiresTrigger: false,
    isMain: true,
  });
}
