import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { expandHome, type Config } from '../config.js';
import { logger } from '../logger.js';
import type { AdditionalMount } from '../types.js';
import type { MountSpec } from './runtime.js';

const allowlistSchema = z.object({
  allowedRoots: z.array(
    z.object({
      path: z.string().min(1),
      allowReadWrite: z.boolean(),
      description: z.string().optional(),
    }),
  ),
  blockedPatterns: z.array(z.string().min(1)).default([]),
  /** When true (the default), non-main groups get every extra mount read-only. */
  nonMainReadOnly: z.boolean().default(true),
});
export type MountAllowlist = z.infer<typeof allowlistSchema>;

/** Path components that name credentials; refused wherever they appear in a path. */
export const ALWAYS_BLOCKED = [
  '.ssh',
  '.gnupg',
  '.gpg',
  '.aws',
  '.azure',
  '.gcloud',
  '.kube',
  '.docker',
  'credentials',
  '.env',
  '.netrc',
  '.npmrc',
  '.pypirc',
  'id_rsa',
  'id_ed25519',
  'private_key',
  '.secret',
];

export const EXTRA_MOUNT_PREFIX = '/workspace/extra';

/**
 * Reads $configDir/mount-allowlist.json. It lives outside the project so no agent can edit it.
 * Missing or invalid means no extra mounts at all (fail closed), and the log says why.
 */
export function loadMountAllowlist(configDir: string): MountAllowlist | null {
  const file = path.join(configDir, 'mount-allowlist.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    logger.info({ file }, 'no mount allowlist; extra mounts disabled');
    return null;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    logger.warn({ file, err: String(err) }, 'mount allowlist is not valid JSON; extra mounts disabled');
    return null;
  }
  const parsed = allowlistSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    logger.warn({ file, problems }, 'mount allowlist is invalid; extra mounts disabled');
    return null;
  }
  return parsed.data;
}

export interface MountValidation {
  allowed: MountSpec[];
  rejected: { mount: AdditionalMount; reason: string }[];
}

const isWithin = (child: string, parent: string) =>
  child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);

function realOrResolved(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function blockedComponent(paths: string[], patterns: string[]): string | null {
  for (const p of paths) {
    const parts = p.toLowerCase().split('/').filter(Boolean);
    for (const pattern of patterns) {
      const needle = pattern.toLowerCase();
      if (needle.includes('/') ? p.toLowerCase().includes(needle) : parts.some((c) => c.includes(needle)))
        return pattern;
    }
  }
  return null;
}

/** Relative, no `..`, plain characters: it becomes /workspace/extra/<name> and a CLI argument. */
function checkContainerName(name: string): string | null {
  if (!name) return 'container path is empty';
  if (name.startsWith('/')) return 'container path must be relative';
  const parts = name.split('/');
  if (parts.includes('..')) return 'container path must not contain ..';
  if (parts.some((p) => p === '' || p === '.')) return 'container path has empty or . segments';
  if (!/^[A-Za-z0-9._/-]+$/.test(name)) return 'container path may use only letters, digits, . _ - /';
  return null;
}

/**
 * Decides which of a group's requested extra mounts it gets. Every check runs on the realpath
 * (symlinks followed), so a link inside an allowed root that points at ~/.ssh is caught.
 */
export function validateAdditionalMounts(
  mounts: AdditionalMount[],
  allowlist: MountAllowlist | null,
  context: { isMain: boolean; config: Config },
): MountValidation {
  const result: MountValidation = { allowed: [], rejected: [] };
  const reject = (mount: AdditionalMount, reason: string) => {
    logger.warn({ hostPath: mount.hostPath, reason }, 'extra mount refused');
    result.rejected.push({ mount, reason });
  };
  if (mounts.length === 0) return result;
  if (!allowlist) {
    for (const mount of mounts) reject(mount, 'no valid mount allowlist');
    return result;
  }
  const { config, isMain } = context;
  const patterns = [...ALWAYS_BLOCKED, ...allowlist.blockedPatterns];
  // Neither inside nor around these: a mount of NANOCLAW_HOME would contain store/ just the same.
  const protectedPaths = [
    config.configDir,
    config.storeDir,
    config.dataDir,
    config.groupsDir,
    config.envFile,
    ...ALWAYS_BLOCKED.map((name) => path.join(os.homedir(), name)),
  ].map(realOrResolved);
  const roots = allowlist.allowedRoots.flatMap((root) => {
    try {
      return [{ ...root, real: fs.realpathSync(expandHome(root.path)) }];
    } catch {
      return [];
    }
  });
  const taken = new Set<string>();

  for (const mount of mounts) {
    if (!mount.hostPath.startsWith('/') && !mount.hostPath.startsWith('~')) {
      reject(mount, 'host path must be absolute or start with ~');
      continue;
    }
    const expanded = path.resolve(expandHome(mount.hostPath));
    let real: string;
    try {
      real = fs.realpathSync(expanded);
    } catch {
      reject(mount, 'host path does not exist');
      continue;
    }
    const blocked = blockedComponent([expanded, real], patterns);
    if (blocked) {
      reject(mount, `path matches blocked pattern "${blocked}"`);
      continue;
    }
    const clash = protectedPaths.find((p) => isWithin(real, p) || isWithin(p, real));
    if (clash) {
      reject(mount, `path overlaps protected location ${clash}`);
      continue;
    }
    const root = roots.find((r) => isWithin(real, r.real));
    if (!root) {
      reject(mount, 'path is not under an allowed root');
      continue;
    }
    const name = mount.containerPath ?? path.basename(expanded);
    const nameProblem = checkContainerName(name);
    if (nameProblem) {
      reject(mount, nameProblem);
      continue;
    }
    const containerPath = path.posix.join(EXTRA_MOUNT_PREFIX, name);
    if (taken.has(containerPath)) {
      reject(mount, `container path ${containerPath} is used twice`);
      continue;
    }
    taken.add(containerPath);
    const wantsWrite = mount.readonly === false;
    const mayWrite = root.allowReadWrite && (isMain || !allowlist.nonMainReadOnly);
    if (wantsWrite && !mayWrite) logger.info({ hostPath: real }, 'extra mount downgraded to read-only');
    result.allowed.push({ hostPath: real, containerPath, readonly: !(wantsWrite && mayWrite) });
  }
  return result;
}
