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

/** data/ipc/<folder> itself is host-owned and never mounted. */
export function groupPaths(config: Config, folder: string) {
  return {
    groupDir: path.join(config.groupsDir, folder),
    globalDir: path.join(config.groupsDir, 'global'),
    fromAgentDir: path.join(config.ipcDir, folder, FROM_AGENT),
    toAgentDir: path.join(config.ipcDir, folder, TO_AGENT),
    sessionDir: path.join(config.sessionsDir, folder, '.claude'),
    proxyDir: path.join(config.proxyDir, folder),
  };
}

/** Hidden from main's view of the project: secrets, store/ and data/, also NANOCLAW_HOME's inside it. */
export function projectMasks(config: Config): { hostPath: string; kind: 'file' | 'dir' }[] {
  const root = config.projectRoot;
  const dirs = [
    path.join(root, 'store'),
    path.join(root, 'data'),
    config.storeDir,
    config.dataDir,
    config.configDir,
  ];
  const masks = [
    ...[path.join(root, '.env'), config.envFile].map((hostPath) => ({ hostPath, kind: 'file' as const })),
    ...dirs.map((hostPath) => ({ hostPath, kind: 'dir' as const })),
  ];
  return masks.filter(
    ({ hostPath: p }, i) => p !== root && isWithin(p, root) && masks.findIndex((m) => m.hostPath === p) === i,
  );
}

export function buildMountPlan(group: RegisteredGroup, config: Config, extra: MountSpec[]): MountSpec[] {
  const p = groupPaths(config, group.folder);
  const C = CONTAINER_PATHS;
  const rw = (hostPath: string, containerPath: string, readonly = false) => ({
    hostPath,
    containerPath,
    readonly,
  });
  const plan: MountSpec[] = [
    rw(p.groupDir, C.group),
    rw(p.globalDir, C.global, true),
    rw(p.fromAgentDir, C.ipc),
    rw(p.toAgentDir, C.inbox, true),
    rw(p.sessionDir, C.session),
    rw(p.proxyDir, C.proxy, true),
  ];
  if (group.isMain) {
    // Read-only so the agent cannot rewrite the host that runs it.
    plan.push(rw(config.projectRoot, C.project, true));
    for (const { hostPath, kind: mask } of projectMasks(config)) {
      const inside = path.relative(config.projectRoot, hostPath).split(path.sep).join('/');
      plan.push({ ...rw('/dev/null', `${C.project}/${inside}`, true), mask });
    }
  }
  return [...plan, ...extra];
}

/** Also main's masked paths, for the masks to sit on; agent-writable ones go to the sandbox user. */
export function prepareGroupDirs(group: RegisteredGroup, config: Config, { uid, gid }: SandboxUser): void {
  const p = groupPaths(config, group.folder);
  fs.mkdirSync(p.globalDir, { recursive: true });
  fs.mkdirSync(p.proxyDir, { recursive: true });
  const own = (dir: SafeDir) => {
    if (!hostIsRoot() || uid === 0) return;
    const self = dir.stat();
    if (self.uid !== uid || self.gid !== gid) {
      // Another uid (or an older version) owned it: hand over the whole tree, once.
      dir.chownSelf(uid, gid);
      return dir.chownTree(uid, gid);
    }
    // Deeper down all is the agent's own; the host adds only top-level files.
    for (const entry of dir.list())
      if (entry !== 'logs' && (dir.lstat(entry)?.uid ?? uid) !== uid) dir.chown(entry, uid, gid);
  };
  const mkdirs = (dir: SafeDir, names: string[]) =>
    names.forEach((name) => dir.subdir(name, { create: true, replace: true }).close());
  withSafeDir(config.groupsDir, [group.folder], { create: true }, own);
  withSafeDir(config.sessionsDir, [group.folder, '.claude'], { create: true }, own);
  withSafeDir(config.ipcDir, [group.folder], { create: true }, (ipc) => {
    // Older versions mounted this folder read-write: take it back.
    if (hostIsRoot()) ipc.chownSelf(0, 0, 0o755);
    ipc.withSubdir(FROM_AGENT, { create: true, replace: true }, (from) => {
      mkdirs(from, ['messages', 'tasks']);
      own(from);
    });
    ipc.withSubdir(TO_AGENT, { create: true, replace: true }, (to) => {
      if (hostIsRoot()) to.chownSelf(0, 0, 0o755);
      try {
        mkdirs(to, [INPUT_DIR, MEDIA_DIR]);
      } catch (err) {
        // Follow-ups and media then fail on their own, each logged.
        logger.warn({ group: group.folder, err: String(err) }, 'cannot prepare the sandbox inbox');
      }
    });
  });
  if (!group.isMain) return;
  for (const { hostPath, kind } of projectMasks(config))
    if (kind === 'dir') fs.mkdirSync(hostPath, { recursive: true });
    else if (!fs.existsSync(hostPath)) fs.writeFileSync(hostPath, '', { mode: 0o600 });
}
