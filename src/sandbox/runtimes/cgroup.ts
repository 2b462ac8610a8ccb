import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../logger.js';

type LimitKind = 'pids' | 'memory';
const KINDS = ['pids', 'memory'] as const;

export interface CgroupLimits {
  pidsMax: number;
  memoryBytes: number;
}
export const DEFAULT_LIMITS: CgroupLimits = { pidsMax: 512, memoryBytes: 2 * 1024 ** 3 };

export interface CgroupSupport {
  version: 'v2' | 'v1' | null;
  bases: Partial<Record<LimitKind, string>>;
  missing: LimitKind[];
  reason?: string;
}

function read(file: string, fallback = ''): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}
const lacking = (file: string) => KINDS.filter((c) => !read(file).split(/\s+/).includes(c));
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

function tryV2(root: string): CgroupSupport | string {
  const controllers = path.join(root, 'cgroup.controllers');
  if (!fs.existsSync(controllers)) return 'no cgroup v2 unified hierarchy';
  if (lacking(controllers).length) return `cgroup v2 does not offer ${lacking(controllers).join(' and ')}`;
  const base = path.join(root, 'nanoclaw');
  try {
    for (const dir of [root, base]) {
      fs.mkdirSync(dir, { recursive: true });
      const control = path.join(dir, 'cgroup.subtree_control');
      const wanted = lacking(control);
      if (wanted.length) fs.writeFileSync(control, wanted.map((c) => `+${c}`).join(' '));
    }
    return { version: 'v2', bases: { pids: base, memory: base }, missing: [] };
  } catch (err) {
    return `cannot delegate pids and memory in cgroup v2 (${errText(err)})`;
  }
}

/** Needs root: v2, else v1 (atop each hierarchy, as docker does, out of systemd's way), else none. */
export function detectCgroupSupport({ root } = { root: '/sys/fs/cgroup' }): CgroupSupport {
  const v2 = tryV2(root);
  if (typeof v2 !== 'string') return v2;
  const bases: CgroupSupport['bases'] = {};
  const reasons = [v2];
  for (const kind of KINDS) {
    const base = path.join(root, kind, 'nanoclaw');
    if (!fs.existsSync(path.join(root, kind, 'tasks'))) reasons.push(`no cgroup v1 ${kind} hierarchy`);
    else
      try {
        fs.mkdirSync(base, { recursive: true });
        fs.accessSync(path.join(base, 'cgroup.procs'), fs.constants.W_OK);
        bases[kind] = base;
      } catch (err) {
        reasons.push(`cgroup v1 ${kind} is not writable (${errText(err)})`);
      }
  }
  const missing = KINDS.filter((kind) => !bases[kind]);
  const reason = missing.length ? { reason: reasons.join('; ') } : {};
  return { version: missing.length < 2 ? 'v1' : null, bases, missing, ...reason };
}

function rmdir(dir: string): string | undefined {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return errText(err);
  }
  return undefined;
}

export class SandboxCgroup {
  private constructor(readonly dirs: string[]) {}

  /** A taken name (a crashed host's leftover) gets a suffix. */
  static create({ version, bases }: CgroupSupport, name: string, limits: CgroupLimits): SandboxCgroup | null {
    if (!version) return null;
    const leaf = name.replace(/[^\w-]/g, '_') || 'sandbox'; // no '/', no '..'
    const files = {
      pids: ['pids.max', limits.pidsMax],
      memory: [version === 'v2' ? 'memory.max' : 'memory.limit_in_bytes', limits.memoryBytes],
    } as const;
    const dirs: string[] = [];
    try {
      for (const base of new Set(KINDS.flatMap((k) => bases[k] ?? []))) {
        fs.mkdirSync(base, { recursive: true });
        for (let i = 0; ; i++) {
          const dir = path.join(base, i ? `${leaf}-${i}` : leaf);
          try {
            fs.mkdirSync(dir);
            dirs.push(dir);
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 100) throw err;
          }
        }
        for (const kind of KINDS.filter((k) => bases[k] === base))
          fs.writeFileSync(path.join(dirs.at(-1)!, files[kind][0]), `${files[kind][1]}`);
      }
      return new SandboxCgroup(dirs);
    } catch (err) {
      dirs.forEach(rmdir);
      throw err;
    }
  }

  attach(pid: number): void {
    for (const dir of this.dirs) fs.writeFileSync(path.join(dir, 'cgroup.procs'), `${pid}`);
  }

  async remove(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (const dir of this.dirs)
      for (let delay = 20, why = rmdir(dir); why; why = rmdir(dir), delay = Math.min(delay * 2, 500)) {
        if (Date.now() > deadline) {
          logger.warn({ dir, err: why }, 'cannot remove sandbox cgroup');
          break;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
  }
}

/** Once a minute old: another host may not have moved its sandbox in yet. */
export function removeStaleCgroups({ bases }: CgroupSupport): number {
  let removed = 0;
  for (const base of new Set(Object.values(bases))) {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(base, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.isDirectory())) {
      const dir = path.join(base, entry.name);
      const stat = fs.statSync(dir, { throwIfNoEntry: false });
      if (!stat || Date.now() - stat.mtimeMs < 60_000 || read(path.join(dir, 'cgroup.procs'), 'x').trim())
        continue;
      if (!rmdir(dir)) removed++;
    }
  }
  return removed;
}
