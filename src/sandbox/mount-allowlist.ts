import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { expandHome, type Config } from '../config.js';
import { logger } from '../logger.js';
import type { AdditionalMount } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';
import { isWithin, type MountSpec } from './runtime.js';

const allowlistSchema = z.object({
  allowedRoots: z.array(
    z.object({ path: z.string().min(1), allowReadWrite: z.boolean(), description: z.string().optional() }),
  ),
  blockedPatterns: z.array(z.string().min(1)).default([]),
  /** When true (the default), non-main groups get every extra mount read-only. */
  nonMainReadOnly: z.boolean().default(true),
});
export type MountAllowlist = z.infer<typeof allowlistSchema>;

/** Path components that name credentials; refused wherever they appear in a path. */
const ALWAYS_BLOCKED = (
  '.ssh .gnupg .gpg .aws .azure .gcloud .kube .docker credentials .env .netrc .npmrc .pypirc id_rsa id_ed25519 ' +
  'private_key .secret'
).split(' ');

/** Missing or invalid: no extra mounts (the log says why). */
export function loadMountAllowlist(configDir: string): MountAllowlist | null {
  const file = path.join(configDir, 'mount-allowlist.json');
  if (!fs.existsSync(file)) {
    logger.info({ file }, 'no mount allowlist; extra mounts disabled');
    return null;
  }
  try {
    const parsed = allowlistSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
    if (parsed.success) return parsed.data;
    logger.warn(
      { file, problems: zodProblems(parsed.error) },
      'mount allowlist invalid; extra mounts disabled',
    );
  } catch (err) {
    logger.warn({ file, err: String(err) }, 'mount allowlist is unreadable; extra mounts disabled');
  }
  return null;
}

const realOrResolved = (p: string) => {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
};

function blockedPattern(paths: string[], patterns: string[]): string | undefined {
  for (const p of paths.map((p) => p.toLowerCase())) {
    const parts = p.split('/');
    const hit = patterns.find((pattern) => {
      const needle = pattern.toLowerCase();
      return needle.includes('/') ? p.includes(needle) : parts.some((c) => c.includes(needle));
    });
    if (hit) return hit;
  }
  return undefined;
}

/** It becomes /workspace/extra/<name> and a CLI argument. */
function containerNameProblem(name: string): string | null {
  if (!name) return 'container path is empty';
  if (name.startsWith('/')) return 'container path must be relative';
  const parts = name.split('/');
  if (parts.includes('..')) return 'container path must not contain ..';
  if (parts.some((p) => p === '' || p === '.')) return 'container path has empty or . segments';
  if (!/^[A-Za-z0-9._/-]+$/.test(name)) return 'container path may use only letters, digits, . _ - /';
  return null;
}

/** Which requested extra mounts a group gets. Checks run on the realpath too: a link to ~/.ssh is caught. */
export function validateAdditionalMounts(
  mounts: AdditionalMount[],
  allowlist: MountAllowlist | null,
  { isMain, config }: { isMain: boolean; config: Config },
): { allowed: MountSpec[]; rejected: { mount: AdditionalMount; reason: string }[] } {
  const result = { allowed: [] as MountSpec[], rejected: [] as { mount: AdditionalMount; reason: string }[] };
  if (mounts.length === 0) return result;
  const patterns = [...ALWAYS_BLOCKED, ...(allowlist?.blockedPatterns ?? [])];
  // Neither inside nor around these: a mount of NANOCLAW_HOME would contain store/ just the same.
  const protectedPaths = [config.configDir, config.storeDir, config.dataDir, config.groupsDir, config.envFile]
    .concat(ALWAYS_BLOCKED.map((name) => path.join(os.homedir(), name)))
    .map(realOrResolved);
  const roots = (allowlist?.allowedRoots ?? []).flatMap((root) => {
    try {
      return [{ ...root, real: fs.realpathSync(expandHome(root.path)) }];
    } catch {
      return [];
    }
  });
  const taken = new Set<string>();

  const check = (mount: AdditionalMount): string | MountSpec => {
    if (!allowlist) return 'no valid mount allowlist';
    if (!mount.hostPath.startsWith('/') && !mount.hostPath.startsWith('~'))
      return 'host path must be absolute or start with ~';
    const expanded = path.resolve(expandHome(mount.hostPath));
    let real: string;
    try {
      real = fs.realpathSync(expanded);
    } catch {
      return 'host path does not exist';
    }
    const blocked = blockedPattern([expanded, real], patterns);
    if (blocked) return `path matches blocked pattern "${blocked}"`;
    const clash = protectedPaths.find((p) => isWithin(real, p) || isWithin(p, real));
    if (clash) return `path overlaps protected location ${clash}`;
    const root = roots.find((r) => isWithin(real, r.real));
    if (!root) return 'path is not under an allowed root';
    const name = mount.containerPath ?? path.basename(expanded);
    const nameProblem = containerNameProblem(name);
    if (nameProblem) return nameProblem;
    const containerPath = path.posix.join('/workspace/extra', name);
    if (taken.has(containerPath)) return `container path ${containerPath} is used twice`;
    taken.add(containerPath);
    const wantsWrite = mount.readonly === false;
    const mayWrite = root.allowReadWrite && (isMain || !allowlist.nonMainReadOnly);
    if (wantsWrite && !mayWrite) logger.info({ hostPath: real }, 'extra mount downgraded to read-only');
    return { hostPath: real, containerPath, readonly: !(wantsWrite && mayWrite) };
  };

  for (const mount of mounts) {
    const outcome = check(mount);
    if (typeof outcome !== 'string') result.allowed.push(outcome);
    else {
      logger.warn({ hostPath: mount.hostPath, reason: outcome }, 'extra mount refused');
      result.rejected.push({ mount, reason: outcome });
    }
  }
  return result;
}
