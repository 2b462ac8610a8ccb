import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../logger.js';

/**
 * Per-sandbox pids and memory limits for bwrap, which has no daemon to set them. cgroup v2 where
 * the machine delegates pids and memory to a subtree we may write; else the v1 pids and memory
 * hierarchies (hybrid layouts, older distributions); else none, and doctor says so.
 */

export type LimitKind = 'pids' | 'memory';

export interface CgroupLimits {
  /** Like docker's --pids-limit 512: room for the SDK, its tools and a browser, not for a fork bomb. */
  pidsMax: number;
  /** Like docker's --memory 2g. */
  memoryBytes: number;
}

export const DEFAULT_LIMITS: CgroupLimits = { pidsMax: 512, memoryBytes: 2 * 1024 ** 3 };

/** Where each limit's per-sandbox cgroups are created, or why a limit is unavailable. */
export interface CgroupSupport {
  version: 'v2' | 'v1' | null;
  /** Parent directory per limit (the same one for both on v2). */
  bases: Partial<Record<LimitKind, string>>;
  missing: LimitKind[];
  /** Why the missing limits are missing, for logs and doctor. */
  reason?: string;
}

export interface CgroupEnv {
  /** Mount point of the cgroup filesystems. */
  root: string;
}

const realEnv = (): CgroupEnv => ({ root: '/sys/fs/cgroup' });

const BASE_NAME = 'nanoclaw';

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * v2: a `nanoclaw` cgroup under the root of the unified hierarchy, with pids and memory enabled for
 * its children. The root is the one place that may both hold processes and hand controllers down;
 * our own cgroup would need to be emptied of the host process first.
 */
function tryV2(env: CgroupEnv): CgroupSupport | string {
  const controllersFile = path.join(env.root, 'cgroup.controllers');
  if (!fs.existsSync(controllersFile)) return 'no cgroup v2 unified hierarchy';
  const available = readOr(controllersFile, '').trim().split(/\s+/);
  const lacking = (['pids', 'memory'] as const).filter((c) => !available.includes(c));
  if (lacking.length > 0) return `cgroup v2 does not offer ${lacking.join(' and ')}`;
  try {
    const enable = (dir: string) => {
      const enabled = readOr(path.join(dir, 'cgroup.subtree_control'), '').split(/\s+/);
      const wanted = ['pids', 'memory'].filter((c) => !enabled.includes(c));
      if (wanted.length > 0)
        fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    };
    enable(env.root);
    const base = path.join(env.root, BASE_NAME);
    fs.mkdirSync(base, { recursive: true });
    enable(base);
    return { version: 'v2', bases: { pids: base, memory: base }, missing: [] };
  } catch (err) {
    return `cannot delegate pids and memory in cgroup v2 (${errorText(err)})`;
  }
}

/**
 * v1: a `nanoclaw` cgroup at the top of each hierarchy, as docker's cgroupfs driver does. Not
 * inside the host's own cgroup: whoever manages that one (systemd, a supervisor) must be able to
 * remove it when the host stops, and a child it does not know about would keep it busy.
 */
function tryV1(env: CgroupEnv, kind: LimitKind): string | { base: string } {
  const mount = path.join(env.root, kind);
  if (!fs.existsSync(path.join(mount, 'tasks'))) return `no cgroup v1 ${kind} hierarchy`;
  const base = path.join(mount, BASE_NAME);
  try {
    fs.mkdirSync(base, { recursive: true });
    fs.accessSync(path.join(base, 'cgroup.procs'), fs.constants.W_OK);
    return { base };
  } catch (err) {
    return `cgroup v1 ${kind} is not writable (${errorText(err)})`;
  }
}

/** Finds (and prepares) where sandbox cgroups go. Needs write access to cgroupfs: in practice root. */
export function detectCgroupSupport(env: CgroupEnv = realEnv()): CgroupSupport {
  const v2 = tryV2(env);
  if (typeof v2 !== 'string') return v2;
  const bases: Partial<Record<LimitKind, string>> = {};
  const reasons = [v2];
  for (const kind of ['pids', 'memory'] as const) {
    const v1 = tryV1(env, kind);
    if (typeof v1 === 'string') reasons.push(v1);
    else bases[kind] = v1.base;
  }
  const missing = (['pids', 'memory'] as const).filter((kind) => !bases[kind]);
  return {
    version: missing.length < 2 ? 'v1' : null,
    bases,
    missing,
    ...(missing.length > 0 ? { reason: reasons.join('; ') } : {}),
  };
}

/** The limit files per version, with the value each gets. */
function limitFiles(version: 'v1' | 'v2', kind: LimitKind, limits: CgroupLimits): [string, string] {
  if (kind === 'pids') return ['pids.max', String(limits.pidsMax)];
  return version === 'v2'
    ? ['memory.max', String(limits.memoryBytes)]
    : ['memory.limit_in_bytes', String(limits.memoryBytes)];
}

/** One sandbox's cgroups (one on v2, one per hierarchy on v1). */
export class SandboxCgroup {
  private constructor(readonly dirs: string[]) {}

  /**
   * Creates the cgroups and writes the limits. A name that is taken (a crashed host's leftover, or
   * a sandbox of the same name) gets a suffix rather than sharing a cgroup.
   */
  static create(support: CgroupSupport, name: string, limits: CgroupLimits): SandboxCgroup | null {
    if (!support.version) return null;
    const leaf = name.replace(/[^A-Za-z0-9_-]/g, '_') || 'sandbox'; // no '/', no '..'
    const byDir = new Map<string, LimitKind[]>();
    for (const kind of ['pids', 'memory'] as const) {
      const base = support.bases[kind];
      if (base) byDir.set(base, [...(byDir.get(base) ?? []), kind]);
    }
    const created: string[] = [];
    try {
      for (const [base, kinds] of byDir) {
        fs.mkdirSync(base, { recursive: true });
        const dir = makeLeaf(base, leaf);
        created.push(dir);
        for (const kind of kinds) {
          const [file, value] = limitFiles(support.version, kind, limits);
          fs.writeFileSync(path.join(dir, file), value);
        }
      }
      return new SandboxCgroup(created);
    } catch (err) {
      for (const dir of created) rmdirQuietly(dir);
      throw err;
    }
  }

  /** Moves a process in; its future children are born inside. */
  attach(pid: number): void {
    for (const dir of this.dirs) fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  }

  /** Removes the cgroups once the last process has left them (exiting processes linger briefly). */
  async remove(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const dir of this.dirs) {
      for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
        const result = tryRmdir(dir);
        if (result === 'done') break;
        if (Date.now() > deadline) {
          logger.warn({ dir, err: result }, 'cannot remove sandbox cgroup');
          break;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

function makeLeaf(base: string, leaf: string): string {
  for (let i = 0; ; i++) {
    const dir = path.join(base, i === 0 ? leaf : `${leaf}-${i}`);
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 100) throw err;
    }
  }
}

function tryRmdir(dir: string): 'done' | string {
  try {
    fs.rmdirSync(dir);
    return 'done';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'done' : errorText(err);
  }
}

function rmdirQuietly(dir: string): void {
  tryRmdir(dir);
}

/**
 * Removes empty sandbox cgroups a killed host left behind. Only ones older than `minAgeMs`: another
 * host on this machine may have just created one and not yet moved its sandbox in.
 */
export function removeStaleCgroups(support: CgroupSupport, minAgeMs = 60_000): number {
  let removed = 0;
  for (const base of new Set(Object.values(support.bases))) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(base, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.isDirectory())) {
      const dir = path.join(base, entry.name);
      const stat = fs.statSync(dir, { throwIfNoEntry: false });
      if (!stat || Date.now() - stat.mtimeMs < minAgeMs) continue;
      if (readOr(path.join(dir, 'cgroup.procs'), 'x').trim() !== '') continue;
      if (tryRmdir(dir) === 'done') removed++;
    }
  }
  return removed;
}
