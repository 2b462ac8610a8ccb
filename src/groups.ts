import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder, type Config } from './config.js';
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

/**
 * Registers a chat as a group: validates, records it, and creates its folder with a memory file.
 * Shared by the CLI, the IPC `register_group` path and first start.
 */
export function registerGroup(store: Store, config: Config, input: GroupRegistration): RegisterResult {
  if (!input.jid.trim()) return { ok: false, error: 'jid must not be empty' };
  if (!input.name.trim()) return { ok: false, error: 'name must not be empty' };
  if (!isValidFolder(input.folder)) {
    return {
      ok: false,
      error: `invalid folder '${input.folder}': use letters, digits, _ and - (starting with a letter or digit), not 'global' or 'errors'`,
    };
  }
  const byFolder = store.groups.byFolder(input.folder);
  if (byFolder && byFolder.jid !== input.jid) {
    return { ok: false, error: `folder '${input.folder}' already belongs to ${byFolder.jid}` };
  }
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

/** groups/<folder>/ with a CLAUDE.md to start the group's memory; groups/global/ for shared memory. */
export function ensureGroupFolder(config: Config, group: RegisteredGroup): void {
  const dir = path.join(config.groupsDir, group.folder);
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  const memory = path.join(dir, 'CLAUDE.md');
  if (!fs.existsSync(memory)) {
    const template = path.join(config.projectRoot, 'groups', group.isMain ? 'main' : 'global', 'CLAUDE.md');
    const fallback = `# ${group.name}\n\nMemory for this chat. ${config.assistantName} reads this file at the start of every run.\n`;
    fs.writeFileSync(
      memory,
      fs.existsSync(template) && group.isMain ? fs.readFileSync(template, 'utf8') : fallback,
    );
  }
  const globalDir = path.join(config.groupsDir, 'global');
  fs.mkdirSync(globalDir, { recursive: true });
  const globalMemory = path.join(globalDir, 'CLAUDE.md');
  const globalTemplate = path.join(config.projectRoot, 'groups', 'global', 'CLAUDE.md');
  if (!fs.existsSync(globalMemory) && fs.existsSync(globalTemplate) && globalTemplate !== globalMemory) {
    fs.copyFileSync(globalTemplate, globalMemory);
  }
}

/** On a fresh home the local web chat is the main group, so a new user can talk right away. */
export function ensureMainGroup(store: Store, config: Config): void {
  if (store.groups.main()) return;
  if (store.groups.byFolder('main')) return;
  registerGroup(store, config, {
    jid: 'local:main',
    name: 'Main (local)',
    folder: 'main',
    requiresTrigger: false,
    isMain: true,
  });
}
