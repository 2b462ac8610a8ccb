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
  nonMainReadOnly: z.boolean().default(true),
});
export type MountAllowlist = z.infer<typeof allowlistSchema>;

const ALWAYS_BLOCKED =
  '.ssh .gnupg .gpg .aws .azure .gcloud .kube .docker credentials .env .netrc .npmrc .pypirc id_rsa id_ed25519 private_key .secret'.split(
    ' ',
  );

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

function realpath(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

/** It becomes /workspace/extra/<name> and a CLI argument. */
function containerNameProblem(name: string): string | undefined {
  if (!name) return 'container path is empty';
  if (name.startsWith('/')) return 'container path must be relative';
  if (name.split('/').some((p) => ['', '.', '..'].includes(p)))
    return 'container path must not have empty, . or .. segments';
  if (!/^[\w./-]+$/.test(name)) return 'container path may use only letters, digits, . _ - /';
}

type Rejected = { mount: AdditionalMount; reason: string };

/** Checks run on the realpath too: a link to ~/.ssh is caught. */
export function validateAdditionalMounts(
  mounts: AdditionalMount[],
  allowlist: MountAllowlist | null,
  { isMain, config }: { isMain: boolean; config: Config },
): { allowed: MountSpec[]; rejected: Rejected[] } {
  const result = { allowed: [] as MountSpec[], rejected: [] as Rejected[] };
  if (!mounts.length) return result;
  const patterns = [...ALWAYS_BLOCKED, ...(allowlist?.blockedPatterns ?? [])].map((p) => p.toLowerCase());
  // Neither inside nor around: a mount of NANOCLAW_HOME would contain store/.
  const protectedPaths = [config.configDir, config.storeDir, config.dataDir, config.groupsDir, config.envFile]
    .concat(ALWAYS_BLOCKED.map((name) => path.join(os.homedir(), name)))
    .map((p) => realpath(p) ?? path.resolve(p));
  const roots = (allowlist?.allowedRoots ?? []).flatMap((root) => {
    const real = realpath(expandHome(root.path));
    return real ? [{ ...root, real }] : [];
  });
  const taken = new Set<string>();

  const check = (mount: AdditionalMount): string | MountSpec => {
    if (!allowlist) return 'no valid mount allowlist';
    if (!/^[/~]/.test(mount.hostPath)) return 'host path must be absolute or start with ~';
    const expanded = path.resolve(expandHome(mount.hostPath));
    const real = realpath(expanded);
    if (!real) return 'host path does not exist';
    for (const p of [expanded, real].map((p) => p.toLowerCase())) {
      const hit = patterns.find((n) =>
        n.includes('/') ? p.includes(n) : p.split('/').some((c) => c.includes(n)),
      );
      if (hit) return `path matches blocked pattern "${hit}"`;
    }
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
