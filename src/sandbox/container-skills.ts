import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../logger.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';
import { groupPaths } from './mount-plan.js';

/**
 * Skills for the agent (container/skills/<name>/SKILL.md and any files beside it) are copied into
 * each group's session dir, data/sessions/<folder>/.claude/skills/, which the sandbox sees as
 * ~/.claude/skills. Copied before every run, so an edited skill reaches every group at its next run.
 *
 * The session dir is writable by the agent, so it is only touched through safe-fs: each skill's
 * folder is removed (links unlinked, not followed) and written afresh with exclusive creates.
 * Skills the agent made itself are kept.
 */

export function containerSkillsDir(config: Pick<Config, 'projectRoot'>): string {
  return path.join(config.projectRoot, 'container', 'skills');
}

type Owner = { uid: number; gid: number };

export interface SyncSkillsOptions {
  /** container/skills in the project. */
  sourceDir: string;
  /** The group's data/sessions/<folder>/.claude directory; its parent is host-owned. */
  sessionDir: string;
  /** When the host runs as root: hand the copies to the sandbox user. */
  owner?: Owner;
}

/** Copies every skill; returns the names copied. A missing source dir means no skills. */
export function syncContainerSkills(options: SyncSkillsOptions): string[] {
  const { sourceDir, sessionDir, owner } = options;
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
  const dirs = [path.basename(sessionDir), 'skills'];
  withSafeDir(path.dirname(sessionDir), dirs, { create: true, replace: true }, (skills) => {
    if (owner) skills.chownSelf(owner.uid, owner.gid);
    for (const name of names) {
      skills.remove(name);
      copyTree(path.join(sourceDir, name), skills, name, owner);
    }
  });
  if (owner) withSafeDir(path.dirname(sessionDir), [dirs[0]!], {}, (d) => d.chownSelf(owner.uid, owner.gid));
  logger.debug({ sessionDir, skills: names }, 'container skills copied');
  return names;
}

/** Copies regular files and folders only, each created exclusively inside `parent`. */
function copyTree(from: string, parent: SafeDir, name: string, owner?: Owner): void {
  parent.withSubdir(name, { create: true }, (to) => {
    if (owner) to.chownSelf(owner.uid, owner.gid);
    for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
      const src = path.join(from, entry.name);
      if (entry.isDirectory()) copyTree(src, to, entry.name, owner);
      else if (entry.isFile()) {
        // Keep a script's execute bit; nothing group- or world-writable.
        to.createFile(entry.name, fs.readFileSync(src), fs.statSync(src).mode & 0o755);
        if (owner) to.chown(entry.name, owner.uid, owner.gid);
      }
    }
  });
}

/**
 * The run-time entry point (the sandbox runner's `prepare` hook): the project's skills into one
 * group's session dir. A failure is logged, never fatal: a run without skills beats no run.
 */
export function prepareContainerSkills(config: Config, folder: string, owner?: Owner): string[] {
  try {
    return syncContainerSkills({
      sourceDir: containerSkillsDir(config),
      sessionDir: groupPaths(config, folder).sessionDir,
      ...(owner ? { owner } : {}),
    });
  } catch (err) {
    logger.warn({ folder, err: String(err) }, 'could not copy container skills');
    return [];
  }
}
