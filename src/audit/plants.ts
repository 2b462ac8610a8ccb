import path from 'node:path';
import { SafeDir, UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import { CONTAINER_PATHS } from '../sandbox/mount-plan.js';
import type { MountSpec } from '../sandbox/runtime.js';
import type { PlantStep } from './types.js';

/**
 * What the probe plants, and how the host takes it away again. One list serves both, so cleanup
 * removes exactly what was planted and nothing of the group's own.
 *
 * Each plant sits where the host later writes or reads: the memory file and logs/ that
 * ensureGroupFolder and writeRunLog create, the IPC folders the watcher scans, the skills the host
 * copies, the top-level entries prepareGroupDirs hands over. The links point into the decoy
 * folder (dangling names there stand for files the host would create by following them). The
 * group's real CLAUDE.md and logs/ are renamed aside first, as an attacker would, and put back.
 */

export interface PlantContext {
  nonce: string;
  decoyDir: string;
  /** Skills the host copies into the session dir before each run (container/skills). */
  skills: string[];
  isMain: boolean;
}

const G = CONTAINER_PATHS.group;
const I = CONTAINER_PATHS.ipc;
const S = CONTAINER_PATHS.session;
const N = CONTAINER_PATHS.inbox;

export function plantPlan(ctx: PlantContext): PlantStep[] {
  const { nonce, decoyDir: d } = ctx;
  const aside = (p: string) => `${p}.audit-${nonce}`;
  const steps: PlantStep[] = [
    // The memory file and the run logs: swapped for links into the decoy.
    { id: 'aside-memory', op: 'rename', path: `${G}/CLAUDE.md`, to: aside(`${G}/CLAUDE.md`), expect: 'ok' },
    { id: 'link-memory', op: 'symlink', path: `${G}/CLAUDE.md`, to: `${d}/created-memory.md`, expect: 'ok' },
    { id: 'aside-logs', op: 'rename', path: `${G}/logs`, to: aside(`${G}/logs`), expect: 'ok' },
    { id: 'link-logs', op: 'symlink', path: `${G}/logs`, to: d, expect: 'ok' },
    { id: 'link-group-entry', op: 'symlink', path: `${G}/.audit-${nonce}`, to: d, expect: 'ok' },
    // IPC: a FIFO (would block a careless reader), links to a host file and folder, a swapped folder.
    { id: 'fifo-message', op: 'fifo', path: `${I}/messages/9-audit-${nonce}.json`, expect: 'ok' },
    {
      id: 'link-message-file',
      op: 'symlink',
      path: `${I}/messages/8-audit-${nonce}.json`,
      to: `${d}/payload.json`,
      expect: 'ok',
    },
    {
      id: 'link-message-dir',
      op: 'symlink',
      path: `${I}/messages/7-audit-${nonce}.json`,
      to: d,
      expect: 'ok',
    },
    { id: 'empty-tasks', op: 'rmdir', path: `${I}/tasks`, expect: 'ok' },
    { id: 'link-tasks', op: 'symlink', path: `${I}/tasks`, to: d, expect: 'ok' },
    {
      id: 'link-snapshot-tmp',
      op: 'symlink',
      path: `${I}/current_tasks.json.tmp`,
      to: `${d}/created-snapshot.json`,
      expect: 'ok',
    },
    // The session dir: skills the host copies in, and an entry its hand-over walks.
    ...ctx.skills.flatMap((skill): PlantStep[] => [
      { id: `remove-skill-${skill}`, op: 'rmtree', path: `${S}/skills/${skill}`, expect: 'ok' },
      { id: `link-skill-${skill}`, op: 'symlink', path: `${S}/skills/${skill}`, to: d, expect: 'ok' },
    ]),
    { id: 'link-session-entry', op: 'symlink', path: `${S}/.audit-${nonce}`, to: d, expect: 'ok' },
    // The host-to-agent part is read-only: nothing may be written, linked or moved there.
    { id: 'inbox-write', op: 'write', path: `${N}/audit-${nonce}.txt`, expect: 'fail' },
    { id: 'inbox-link', op: 'symlink', path: `${N}/current_tasks.json.tmp`, to: d, expect: 'fail' },
    { id: 'inbox-move', op: 'rename', path: `${N}/input`, to: `${N}/input.audit-${nonce}`, expect: 'fail' },
    { id: 'inbox-input-write', op: 'write', path: `${N}/input/9-audit-${nonce}.json`, expect: 'fail' },
    // Shared memory and the project are read-only; so is the root filesystem.
    { id: 'global-write', op: 'write', path: `${CONTAINER_PATHS.global}/audit-${nonce}.txt`, expect: 'fail' },
    { id: 'rootfs-usr', op: 'write', path: `/usr/audit-${nonce}.txt`, expect: 'fail' },
    { id: 'rootfs-etc', op: 'write', path: `/etc/audit-${nonce}.txt`, expect: 'fail' },
  ];
  if (ctx.isMain)
    steps.push({
      id: 'project-write',
      op: 'write',
      path: `${CONTAINER_PATHS.project}/audit-${nonce}.txt`,
      expect: 'fail',
    });
  return steps;
}

/** The host folder holding a container path, as a host-owned root plus segments, via the mounts. */
function locate(
  containerPath: string,
  mounts: MountSpec[],
): { root: string; segments: string[]; name: string } | undefined {
  const mount = mounts
    .filter(
      (m) =>
        !m.mask && (containerPath === m.containerPath || containerPath.startsWith(`${m.containerPath}/`)),
    )
    .sort((a, b) => b.containerPath.length - a.containerPath.length)[0];
  if (!mount) return undefined;
  const rel = path.posix.relative(mount.containerPath, containerPath).split('/').filter(Boolean);
  const name = rel.pop();
  if (!name) return undefined;
  return { root: path.dirname(mount.hostPath), segments: [path.basename(mount.hostPath), ...rel], name };
}

function inFolderOf<T>(containerPath: string, mounts: MountSpec[], fn: (dir: SafeDir, name: string) => T) {
  const where = locate(containerPath, mounts);
  if (!where) return undefined;
  try {
    return withSafeDir(where.root, where.segments, {}, (dir) => fn(dir, where.name));
  } catch (err) {
    if (err instanceof UnsafeEntryError || (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Puts a renamed-aside entry back. Whatever sits at the name now (a planted link, or the folder
 * the host made in its place) goes; entries the host wrote into that folder meanwhile, other than
 * the audit's own `drop`, are moved into the original first.
 */
function restoreAside(dir: SafeDir, name: string, asideName: string, drop: string[]): void {
  const current = dir.lstat(name);
  if (current?.isDirectory()) {
    dir.withSubdir(name, {}, (made) => {
      for (const entry of drop) made.remove(entry);
      if (!dir.lstat(asideName)?.isDirectory()) return;
      dir.withSubdir(asideName, {}, (original) => {
        for (const entry of made.list()) if (!original.lstat(entry)) made.moveTo(entry, original);
      });
    });
  }
  if (!dir.lstat(asideName)) return;
  dir.remove(name);
  dir.moveTo(asideName, dir, name);
}

/**
 * Removes the plants, link-safely and in reverse: links, FIFOs and files of the kind the probe made
 * (never a folder: where the host replaced a planted link with a real folder, that folder is the
 * group's now), and the renamed-aside originals put back. `planted` is what the probe reported
 * done, or 'unknown' when it never reported; then the kind check alone decides. `drop` names host
 * files the audit made in those folders (its run log). Returns what could not be cleaned.
 */
export function removePlants(
  steps: PlantStep[],
  planted: ReadonlySet<string> | 'unknown',
  mounts: MountSpec[],
  drop: string[] = [],
): string[] {
  const problems: string[] = [];
  for (const step of [...steps].reverse()) {
    try {
      if (step.op === 'rename' && step.to) {
        const asideName = path.posix.basename(step.to);
        inFolderOf(step.path, mounts, (dir, name) => restoreAside(dir, name, asideName, drop));
        continue;
      }
      if (planted !== 'unknown' && !planted.has(step.id)) continue;
      inFolderOf(step.path, mounts, (dir, name) => {
        const st = dir.lstat(name);
        const made =
          (step.op === 'symlink' && st?.isSymbolicLink()) ||
          (step.op === 'fifo' && st?.isFIFO()) ||
          (step.op === 'write' && st?.isFile());
        if (made) dir.remove(name);
      });
    } catch (err) {
      problems.push(`${step.path}: ${(err as Error).message}`);
    }
  }
  return problems;
}
