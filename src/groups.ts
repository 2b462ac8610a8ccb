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
  const owner = store.groups.byFolder(folder);
  if (owner && owner.jid !== jid) return `folder '${folder}' is already used by chat '${owner.jid}'`;
}

/**
 * Registers a chat as a group: validates, records it, and creates its folder with a memory file.
 * Shared by the CLI, the IPC `register_group` path and first start.
 */
export function registerGroup(store: Store, config: Config, input: GroupRegistration): RegisterResult {
  if (!input.jid.trim()) return { ok: false, error: 'jid must not be empty' };
  if (!input.name.trim()) return { ok: false, error: 'name must not be empty' };
  if (!isValidFolder(input.folder))
    return { ok: false, error: `invalid folder '${input.folder}': ${FOLDER_RULE}` };
  const taken = folderTaken(store, input.jid, input.folder);
  if (taken) return { ok: false, error: taken };
  const existing = store.groups.byJid(input.jid);
  const group: RegisteredGroup = {
    jid: input.jid,
    name: input.name,
    folder: input.folder,
    trigger: input.trigger?.trim() || `@${config.assistantName}`,
    requiresTrigger: input.requiresTrigger ?? true,
    isMain: input.isMain ?? false,
    addedAt: existing?.addedAt ?? new Date().toISOString(),
    ...(existing?.containerConfig ? { containerConfig: existing.containerConfig } : {}),
  };
  store.groups.upsert(group);
  ensureGroupFolder(config, group);
  return { ok: true, group };
}

/**
 * groups/<folder>/ with a CLAUDE.md to start the group's memory; groups/global/ for shared memory.
 * The group folder is the agent's: the memory file is created exclusively through safe-fs, so a
 * planted link (even a dangling one) is left alone rather than written through.
 */
export function ensureGroupFolder(config: Config, group: RegisteredGroup): void {
  withSafeDir(config.groupsDir, [group.folder], { create: true }, (dir) => {
    if (!dir.lstat('CLAUDE.md')) dir.createFile('CLAUDE.md', memoryTemplate(config, group));
    dir.subdir('logs', { create: true, replace: true }).close();
  });
  const globalDir = path.join(config.groupsDir, 'global');
  fs.mkdirSync(globalDir, { recursive: true });
  const globalMemory = path.join(globalDir, 'CLAUDE.md');
  const globalTemplate = path.join(config.projectRoot, 'groups', 'global', 'CLAUDE.md');
  if (!fs.existsSync(globalMemory) && fs.existsSync(globalTemplate) && globalTemplate !== globalMemory) {
    fs.copyFileSync(globalTemplate, globalMemory);
  }
}

/**
 * The project's template for main, else a short stub. When NANOCLAW_HOME is the project, the
 * template would be main's own (agent-writable) memory file: then the stub is used.
 */
function memoryTemplate(config: Config, group: RegisteredGroup): string {
  const template = path.join(config.projectRoot, 'groups', 'main', 'CLAUDE.md');
  if (group.isMain && !template.startsWith(`${config.groupsDir}/`) && fs.existsSync(template))
    return fs.readFileSync(template, 'utf8');
  return `# ${group.name}\n\nMemory for this chat. ${config.assistantName} reads this file at the start of every run.\n`;
}

/** On a fresh home the local web chat is the main group, so a new user can talk right away. */
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
