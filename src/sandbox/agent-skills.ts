import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../logger.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';
import { sessionDir } from './mount-plan.js';
import type { SandboxUser } from './runtime.js';

export const agentSkillsDir = (config: Pick<Config, 'projectRoot'>): string =>
  path.join(config.projectRoot, 'container', 'skills');

/** Fresh copies via safe-fs (the session dir is the agent's); the agent's own skills stay. */
export function syncAgentSkills(o: { sourceDir: string; sessionDir: string; owner?: SandboxUser }): string[] {
  const { sourceDir, sessionDir: dir, owner } = o;
  const names = fs.existsSync(sourceDir)
    ? fs.readdirSync(sourceDir).filter((name) => fs.existsSync(path.join(sourceDir, name, 'SKILL.md')))
    : [];
  if (!names.length) return [];
  const give = (dir: SafeDir, name?: string) =>
    owner && (name ? dir.chown(name, owner.uid, owner.gid) : dir.chownSelf(owner.uid, owner.gid));
  const copy = (from: string, parent: SafeDir, name: string): void =>
    parent.withSubdir(name, { create: true }, (to) => {
      give(to);
      for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
        const src = path.join(from, entry.name);
        if (entry.isDirectory()) copy(src, to, entry.name);
        else if (entry.isFile()) {
          to.createFile(entry.name, fs.readFileSync(src), fs.statSync(src).mode & 0o755);
          give(to, entry.name);
        }
      }
    });
  const [parent, session] = [path.dirname(dir), path.basename(dir)];
  withSafeDir(parent, [session, 'skills'], { create: true, replace: true }, (skills) => {
    give(skills);
    for (const name of names.sort()) {
      skills.remove(name);
      copy(path.join(sourceDir, name), skills, name);
    }
  });
  if (owner) withSafeDir(parent, [session], {}, give);
  return names;
}

export function prepareAgentSkills(config: Config, folder: string, owner?: SandboxUser): string[] {
  try {
    return syncAgentSkills({
      sourceDir: agentSkillsDir(config),
      sessionDir: sessionDir(config, folder),
      owner,
    });
  } catch (err) {
    logger.warn({ folder, err: String(err) }, 'could not copy agent skills');
    return [];
  }
}
