import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../logger.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';
import { groupPaths } from './mount-plan.js';
import type { SandboxUser } from './runtime.js';

export const agentSkillsDir = (config: Pick<Config, 'projectRoot'>): string =>
  path.join(config.projectRoot, 'container', 'skills');

/** Copies each skill afresh, keeping the agent's own; safe-fs only: the session dir is the agent's. */
export function syncAgentSkills(opts: {
  sourceDir: string;
  sessionDir: string;
  owner?: SandboxUser;
}): string[] {
  const { sourceDir, sessionDir, owner } = opts;
  let names: string[];
  try {
    names = fs
      .readdirSync(sourceDir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && fs.existsSync(path.join(sourceDir, e.name, 'SKILL.md')))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
  if (names.length === 0) return [];
  const [parent, session] = [path.dirname(sessionDir), path.basename(sessionDir)];
  withSafeDir(parent, [session, 'skills'], { create: true, replace: true }, (skills) => {
    if (owner) skills.chownSelf(owner.uid, owner.gid);
    for (const name of names) {
      skills.remove(name);
      copyTree(path.join(sourceDir, name), skills, name, owner);
    }
  });
  if (owner) withSafeDir(parent, [session], {}, (d) => d.chownSelf(owner.uid, owner.gid));
  logger.debug({ sessionDir, skills: names }, 'agent skills copied');
  return names;
}

/** Regular files and folders only, each created exclusively. */
function copyTree(from: string, parent: SafeDir, name: string, owner?: SandboxUser): void {
  parent.withSubdir(name, { create: true }, (to) => {
    if (owner) to.chownSelf(owner.uid, owner.gid);
    for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
      const src = path.join(from, entry.name);
      if (entry.isDirectory()) copyTree(src, to, entry.name, owner);
      if (!entry.isFile()) continue;
      // Keep a script's execute bit; nothing group- or world-writable.
      to.createFile(entry.name, fs.readFileSync(src), fs.statSync(src).mode & 0o755);
      if (owner) to.chown(entry.name, owner.uid, owner.gid);
    }
  });
}

/** A run without skills beats no run. */
export function prepareAgentSkills(config: Config, folder: string, owner?: SandboxUser): string[] {
  try {
    const { sessionDir } = groupPaths(config, folder);
    return syncAgentSkills({ sourceDir: agentSkillsDir(config), sessionDir, owner });
  } catch (err) {
    logger.warn({ folder, err: String(err) }, 'could not copy agent skills');
    return [];
  }
}
