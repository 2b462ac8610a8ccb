import fs from 'node:fs';
import { zodProblems } from '../contract/ipc.js';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { expandHome, type Config } from '../config.js';
import { logger } from '../logger.js';
import type { AdditionalMount } from '../types.js';
import { isWithin, type MountSpec } from './runtime.js';

const allowlistSchema = z.object({
  allowedRoots: z.array(z.object({ path: z.string().min(1), allowReadWrite: z.boolean() })),
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
  if (!fs.existsSync(file)) return null;
  try {
    return allowlistSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch (err) {
    const problem = err instanceof z.ZodError ? zodProblems(err) : String(err);
    logger.warn({ file, problem }, 'mount allowlist invalid; extra mounts disabled');
    return null;
  }
}

const realpath = (p: string) => (fs.existsSync(p) ? fs.realpathSync(p) : null);

export function validateAdditionalMounts(
  mounts: AdditionalMount[],
  allowlist: MountAllowlist | null,
  { isMain, config }: { isMain: boolean; config: Config },
) {
  const result = { allowed: [] as MountSpec[], rejected: [] as { mount: AdditionalMount; reason: string }[] };
  const patterns = [...ALWAYS_BLOCKED, ...(allowlist?.blockedPatterns ?? [])].map((p) => p.toLowerCase());
  // Neither inside nor around: a mount of NANOCLAW_HOME would contain store/.
  const protectedPaths = [config.configDir, config.storeDir, config.dataDir, config.groupsDir, config.envFile]
    .concat(ALWAYS_BLOCKED.map((name) => path.join(os.homedir(), name)))
    .map((p) => realpath(p) ?? path.resolve(p));
  const roots = (allowlist?.allowedRoots ?? []).flatMap((root) => {
    const real = realpath(expandHome(root.path));
    return real ? [{ ...root, real }] : [];
  });

  const check = (mount: AdditionalMount): string | MountSpec => {
    if (!allowlist) return 'no valid mount allowlist';
    if (!/^[/~]/.test(mount.hostPath)) return 'host path must be absolute or start with ~';
    const expanded = path.resolve(expandHome(mount.hostPath));
    const real = realpath(expanded);
    if (!real) return 'host path does not exist';
    for (const p of [expanded, real].map((p) => p.toLowerCase())) {
      const hit = patterns.find((n) => p.includes(n));
      if (hit) return `path matches blocked pattern "${hit}"`;
    }
    const clash = protectedPaths.find((p) => isWithin(real, p) || isWithin(p, real));
    if (clash) return `path overlaps protected location ${clash}`;
    const root = roots.find((r) => isWithin(real, r.real));
    if (!root) return 'path is not under an allowed root';
    const name = mount.containerPath ?? path.basename(expanded);
    if (name.startsWith('/')) return 'container path must be relative';
    if (name.split('/').some((p) => ['', '.', '..'].includes(p)))
      return 'container path has empty, . or .. parts';
    if (!/^[\w./-]+$/.test(name)) return 'container path may use only letters, digits, . _ - /';
    const mayWrite = root.allowReadWrite && (isMain || !allowlist.nonMainReadOnly);
    return {
      hostPath: real,
      containerPath: `/workspace/extra/${name}`,
      readonly: !(mount.readonly === false && mayWrite),
    };
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
