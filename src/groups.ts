import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { FOLDER_RULE, isValidFolder } from './contract/ipc.js';
import { withSafeDir } from './safe-fs.js';
import type { Store } from './db/store.js';
import type { RegisteredGroup } from './types.js';

export interface GroupRegistration {
  jid: string;
  name: string;
  folder: string;
  trigger?: string;
  requiresTrigger?: boolean;
  isMain?: boolean;
}

export type RegisterResult = { ok: true; group: RegisteredGroup } | { ok: false; error: string };

/** A folder belongs to one chat only. */
export function folderTaken(store: Store, jid: string, folder: string): string | undefined {
  const owner = store.groups.byFolder(folder)?.jid;
  if (owner && owner !== jid) return `folder '${folder}' is already used by chat '${owner}'`;
}

export function registerGroup(store: Store, config: Config, input: GroupRegistration): RegisterResult {
  const error =
    (!input.jid.trim() && 'jid must not be empty') ||
    (!input.name.trim() && 'name must not be empty') ||
    (!isValidFolder(input.folder) && `invalid folder '${input.folder}': ${FOLDER_RULE}`) ||
    folderTaken(store, input.jid, input.folder);
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
  withSafeDir(config.groupsDir, [group.folder], { create: true }, (dir) => {
    if (!dir.lstat('CLAUDE.md')) dir.createFile('CLAUDE.md', memoryTemplate(config, group));
    dir.subdir('logs', { create: true, replace: true }).close();
  });
  const globalDir = path.join(config.groupsDir, 'global');
  fs.mkdirSync(globalDir, { recursive: true });
  const memory = path.join(globalDir, 'CLAUDE.md');
  const template = path.join(config.projectRoot, 'groups', 'global', 'CLAUDE.md');
  if (!fs.existsSync(memory) && fs.existsSync(template) && template !== memory)
    fs.copyFileSync(template, memory);
}

/** The project's template for main, unless it is main's own (agent-writable) memory file. */
function memoryTemplate(config: Config, group: RegisteredGroup): string {
  const template = path.join(config.projectRoot, 'groups', 'main', 'CLAUDE.md');
  if (group.isMain && !template.startsWith(`${config.groupsDir}/`) && fs.existsSync(template))
    return fs.readFileSync(template, 'utf8');
  return `# ${group.name}\n\nMemory for this chat. ${config.assistantName} reads this file at the start of every run.\n`;
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
