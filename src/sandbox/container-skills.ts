import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../logger.js';
import { groupPaths } from './mount-plan.js';
import { hostIsRoot, sandboxUser } from './runtime.js';

/**
 * Skills for the agent (container/skills/<name>/SKILL.md and any files beside it) are copied into
 * each group's session dir, data/sessions/<folder>/.claude/skills/, which the sandbox sees as
 * ~/.claude/skills. Copied before every run, so an edited skill reaches every group at its next run.
 *
 * The session dir is writable by the agent, so anything in it may be a link it planted: the host
 * never writes through an existing entry. Each skill's directory is removed (links unlinked, not
 * followed) and written afresh with exclusive creates. Skills the agent made itself are kept.
 */

export function containerSkillsDir(config: Pick<Config, 'projectRoot'>): string {
  return path.join(config.projectRoot, 'container', 'skills');
}

export interface SyncSkillsOptions {
  /** container/skills in the project. */
  sourceDir: string;
  /** The group's data/sessions/<folder>/.claude directory. */
  sessionDir: string;
  /** When the host runs as root: hand the copies to the sandbox user. */
  owner?: { uid: number; gid: number };
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
  const skillsDir = path.join(sessionDir, 'skills');
  realDirectory(sessionDir, owner);
  realDirectory(skillsDir, owner);
  for (const name of names) {
    const target = path.join(skillsDir, name);
    fs.rmSync(target, { recursive: true, force: true });
    copyTree(path.join(sourceDir, name), target, owner);
  }
  logger.debug({ sessionDir, skills: names }, 'container skills copied');
  return names;
}

/** Makes `dir` a real directory: whatever else sits there (a link, a file) is removed first. */
function realDirectory(dir: string, owner?: { uid: number; gid: number }): void {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) fs.rmSync(dir, { force: true });
  if (!stat?.isDirectory()) fs.mkdirSync(dir, { recursive: true });
  if (owner) fs.lchownSync(dir, owner.uid, owner.gid);
}

/** Copies regular files and directories only; `wx` never writes through something already there. */
function copyTree(from: string, to: string, owner?: { uid: number; gid: number }): void {
  fs.mkdirSync(to, { mode: 0o755 });
  if (owner) fs.lchownSync(to, owner.uid, owner.gid);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dest, owner);
    else if (entry.isFile()) {
      // Keep a script's execute bit; nothing group- or world-writable.
      const mode = fs.statSync(src).mode & 0o755;
      fs.writeFileSync(dest, fs.readFileSync(src), { flag: 'wx', mode });
      if (owner) fs.lchownSync(dest, owner.uid, owner.gid);
    }
  }
}

/**
 * The run-time entry point (the container runner's `prepare` hook): the project's skills into one
 * group's session dir, owned by the sandbox user. A failure is logged, never fatal: a run without
 * skills beats no run.
 */
export function prepareContainerSkills(config: Config, folder: string): string[] {
  try {
    return syncContainerSkills({
      sourceDir: containerSkillsDir(config),
      sessionDir: groupPaths(config, folder).sessionDir,
      ...(hostIsRoot() ? { owner: sandboxUser() } : {}),
    });
  } catch (err) {
    logger.warn({ folder, err: String(err) }, 'could not copy container skills');
    return [];
  }
}
