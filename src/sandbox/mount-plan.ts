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
  const candidates: [string, 'file' | 'dir'][] = [
    [path.join(root, '.env'), 'file'],
    [path.join(root, 'store'), 'dir'],
    [path.join(root, 'data'), 'dir'],
    [config.envFile, 'file'],
    [config.storeDir, 'dir'],
    [config.dataDir, 'dir'],
    [config.configDir, 'dir'],
  ];
  return candidates
    .filter(([p], i) => p !== root && isWithin(p, root) && candidates.findIndex(([q]) => q === p) === i)
    .map(([hostPath, kind]) => ({ hostPath, kind }));
}

/** Pure (prepareGroupDirs creates the folders); extras come validated. */
export function buildMountPlan(group: RegisteredGroup, config: Config, extra: MountSpec[]): MountSpec[] {
  const p = groupPaths(config, group.folder);
  const C = CONTAINER_PATHS;
  const mount = (hostPath: string, containerPath: string, readonly: boolean) => ({
    hostPath,
    containerPath,
    readonly,
  });
  const plan: MountSpec[] = [
    mount(p.groupDir, C.group, false),
    mount(p.globalDir, C.global, true),
    mount(p.fromAgentDir, C.ipc, false),
    mount(p.toAgentDir, C.inbox, true),
    mount(p.sessionDir, C.session, false),
    mount(p.proxyDir, C.proxy, true),
  ];
  if (group.isMain) {
    // Read-only so the agent cannot rewrite the host that runs it.
    plan.push(mount(config.projectRoot, C.project, true));
    for (const { hostPath, kind } of projectMasks(config)) {
      const inside = path.relative(config.projectRoot, hostPath).split(path.sep).join('/');
      plan.push({ ...mount('/dev/null', `${C.project}/${inside}`, true), mask: kind });
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
      dir.chownTree(uid, gid);
      return;
    }
    // Deeper down all is the agent's own; the host adds only top-level files.
    for (const entry of dir.list()) {
      const stat = entry === 'logs' ? undefined : dir.lstat(entry);
      if (stat && stat.uid !== uid) dir.chown(entry, uid, gid);
    }
  };
  const mkdirs = (dir: SafeDir, names: string[]) => {
    for (const name of names) dir.subdir(name, { create: true, replace: true }).close();
  };
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
  for (const { hostPath, kind } of projectMasks(config)) {
    if (kind === 'dir') fs.mkdirSync(hostPath, { recursive: true });
    else if (!fs.existsSync(hostPath)) fs.writeFileSync(hostPath, '', { mode: 0o600 });
  }
}
