import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../logger.js';

const KINDS = ['pids', 'memory'] as const;

export type CgroupLimits = { pidsMax: number; memoryBytes: number };
export const DEFAULT_LIMITS: CgroupLimits = { pidsMax: 512, memoryBytes: 2 * 1024 ** 3 };

export interface CgroupSupport {
  version: 'v2' | 'v1' | null;
  bases: Partial<Record<(typeof KINDS)[number], string>>;
  missing: (typeof KINDS)[number][];
  reason?: string;
}

const lacking = (file: string) => {
  const offered = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split(/\s+/) : [];
  return KINDS.filter((c) => !offered.includes(c));
};
function rmdir(dir: string): boolean {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  return true;
}

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
    return `cannot delegate pids and memory in cgroup v2 (${(err as Error).message})`;
  }
}

/** Needs root: v2, else v1 (atop each hierarchy, as docker does), else none. */
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
        reasons.push(`cgroup v1 ${kind} is not writable (${(err as Error).message})`);
      }
  }
  const missing = KINDS.filter((kind) => !bases[kind]);
  const reason = missing.length ? { reason: reasons.join('; ') } : {};
  return { version: missing.length < 2 ? 'v1' : null, bases, missing, ...reason };
}

export class SandboxCgroup {
  private constructor(readonly dirs: string[]) {}

  /** A taken name is not shared: mkdir fails, so the sandbox does not start. */
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
        fs.mkdirSync(path.join(base, leaf));
        dirs.push(path.join(base, leaf));
        for (const kind of KINDS.filter((k) => bases[k] === base))
          fs.writeFileSync(path.join(base, leaf, files[kind][0]), `${files[kind][1]}`);
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
    for (const dir of this.dirs)
      for (let tries = 0; !rmdir(dir); tries++) {
        if (tries === 200) return logger.warn({ dir }, 'cannot remove sandbox cgroup');
        await new Promise((r) => setTimeout(r, 50));
      }
  }
}
