import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { FROM_AGENT, INPUT_DIR, MEDIA_DIR, TO_AGENT } from '../ipc/to-agent.js';
import { logger } from '../logger.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import { hostIsRoot, isWithin, SANDBOX_HOME, type MountSpec, type SandboxUser } from './runtime.js';

export const CONTAINER_PATHS = {
  group: '/workspace/group',
  global: '/workspace/global',
  ipc: '/workspace/ipc',
  inbox: '/workspace/inbox',
  session: `${SANDBOX_HOME}/.claude`,
  proxy: '/run/nanoclaw',
  project: '/workspace/project',
} as const;

export const sessionDir = (config: Config, folder: string) =>
  path.join(config.sessionsDir, folder, '.claude');

export function projectMasks({ projectRoot: root, ...c }: Config) {
  const masks = [
    ...[path.join(root, '.env'), c.envFile].map((hostPath) => ({ hostPath, kind: 'file' as const })),
    ...[path.join(root, 'store'), path.join(root, 'data'), c.storeDir, c.dataDir, c.configDir].map(
      (hostPath) => ({ hostPath, kind: 'dir' as const }),
    ),
  ];
  return masks.filter(
    ({ hostPath: p }, i) => p !== root && isWithin(p, root) && masks.findIndex((m) => m.hostPath === p) === i,
  );
}

export function buildMountPlan(group: RegisteredGroup, config: Config, extra: MountSpec[]): MountSpec[] {
  const { folder, isMain } = group;
  const ipc = path.join(config.ipcDir, folder);
  const C = CONTAINER_PATHS;
  const ro = (hostPath: string, containerPath: string, readonly = true) => ({
    hostPath,
    containerPath,
    readonly,
  });
  const masks = isMain ? projectMasks(config) : [];
  return [
    ro(path.join(config.groupsDir, folder), C.group, false),
    ro(path.join(config.groupsDir, 'global'), C.global),
    ro(path.join(ipc, FROM_AGENT), C.ipc, false),
    ro(path.join(ipc, TO_AGENT), C.inbox),
    ro(sessionDir(config, folder), C.session, false),
    ro(path.join(config.proxyDir, folder), C.proxy),
    ...(isMain ? [ro(config.projectRoot, C.project)] : []),
    ...masks.map((m) => ({
      ...ro('/dev/null', `${C.project}/${path.relative(config.projectRoot, m.hostPath)}`),
      mask: m.kind,
    })),
    ...extra,
  ];
}

/** Agent-writable ones go to the sandbox user; main's masked paths exist for the masks to sit on. */
export function prepareGroupDirs(group: RegisteredGroup, config: Config, { uid, gid }: SandboxUser): void {
  fs.mkdirSync(path.join(config.groupsDir, 'global'), { recursive: true });
  fs.mkdirSync(path.join(config.proxyDir, group.folder), { recursive: true });
  const root = hostIsRoot();
  const own = (dir: SafeDir) => {
    if (!root || uid === 0) return;
    const self = dir.stat();
    // Another uid owned it: hand over the whole tree, once. Later the host adds only top-level files.
    if (self.uid !== uid || self.gid !== gid) return (dir.chownSelf(uid, gid), dir.chownTree(uid, gid));
    for (const entry of dir.list())
      if (entry !== 'logs' && (dir.lstat(entry)?.uid ?? uid) !== uid) dir.chown(entry, uid, gid);
  };
  const mkdirs = (dir: SafeDir, names: string[]) =>
    names.forEach((name) => dir.subdir(name, { create: true, replace: true }).close());
  const opts = { create: true, replace: true };
  withSafeDir(config.groupsDir, [group.folder], { create: true }, own);
  withSafeDir(config.sessionsDir, [group.folder, '.claude'], { create: true }, own);
  withSafeDir(config.ipcDir, [group.folder], { create: true }, (ipc) => {
    // Older versions mounted this folder read-write: take it back.
    if (root) ipc.chownSelf(0, 0, 0o755);
    ipc.withSubdir(FROM_AGENT, opts, (from) => (mkdirs(from, ['messages', 'tasks']), own(from)));
    ipc.withSubdir(TO_AGENT, opts, (to) => {
      if (root) to.chownSelf(0, 0, 0o755);
      try {
        mkdirs(to, [INPUT_DIR, MEDIA_DIR]);
      } catch (err) {
        // Follow-ups and media then fail on their own, each logged; the run goes on.
        logger.warn({ group: group.folder, err: String(err) }, 'cannot prepare the sandbox inbox');
      }
    });
  });
  if (group.isMain)
    for (const { hostPath, kind } of projectMasks(config))
      if (kind === 'dir') fs.mkdirSync(hostPath, { recursive: true });
      else if (!fs.existsSync(hostPath)) fs.writeFileSync(hostPath, '', { mode: 0o600 });
}
