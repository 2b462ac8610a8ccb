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
  const names = fs.existsSync(sourceDir)
    ? fs
        .readdirSync(sourceDir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && fs.existsSync(path.join(sourceDir, e.name, 'SKILL.md')))
        .map((e) => e.name)
        .sort()
    : [];
  if (!names.length) return [];
  const chown = (dir: SafeDir, name?: string) =>
    owner && (name ? dir.chown(name, owner.uid, owner.gid) : dir.chownSelf(owner.uid, owner.gid));
  const copyTree = (from: string, parent: SafeDir, name: string): void =>
    parent.withSubdir(name, { create: true }, (to) => {
      chown(to);
      for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
        const src = path.join(from, entry.name);
        if (entry.isDirectory()) copyTree(src, to, entry.name);
        if (!entry.isFile()) continue;
        // Keep a script's execute bit; nothing group- or world-writable.
        to.createFile(entry.name, fs.readFileSync(src), fs.statSync(src).mode & 0o755);
        chown(to, entry.name);
      }
    });
  const [parent, session] = [path.dirname(sessionDir), path.basename(sessionDir)];
  withSafeDir(parent, [session, 'skills'], { create: true, replace: true }, (skills) => {
    chown(skills);
    for (const name of names) {
      skills.remove(name);
      copyTree(path.join(sourceDir, name), skills, name);
    }
  });
  if (owner) withSafeDir(parent, [session], {}, (d) => chown(d));
  logger.debug({ sessionDir, skills: names }, 'agent skills copied');
  return names;
}

export function prepareAgentSkills(config: Config, folder: string, owner?: SandboxUser): string[] {
  try {
    return syncAgentSkills({
      sourceDir: agentSkillsDir(config),
      sessionDir: groupPaths(config, folder).sessionDir,
      owner,
    });
  } catch (err) {
    logger.warn({ folder, err: String(err) }, 'could not copy agent skills');
    return [];
  }
}
