import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { FROM_AGENT, INPUT_DIR, MEDIA_DIR, TO_AGENT } from '../ipc/to-agent.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import { hostIsRoot, SANDBOX_HOME, type MountSpec } from './runtime.js';

export const CONTAINER_PATHS = {
  group: '/workspace/group',
  global: '/workspace/global',
  ipc: '/workspace/ipc',
  inbox: '/workspace/inbox',
  session: `${SANDBOX_HOME}/.claude`,
  proxy: '/run/nanoclaw',
  project: '/workspace/project',
} as const;

/** Host directories that belong to one group. */
export function groupPaths(config: Config, folder: string) {
  const ipcDir = path.join(config.ipcDir, folder);
  return {
    groupDir: path.join(config.groupsDir, folder),
    globalDir: path.join(config.groupsDir, 'global'),
    /** Host-owned; never mounted. Holds the two parts below. */
    ipcDir,
    /** Agent to host: messages/ and tasks/, the only IPC an agent writes. */
    fromAgentDir: path.join(ipcDir, FROM_AGENT),
    /** Host to agent: input/, media/, snapshots; mounted read-only. */
    toAgentDir: path.join(ipcDir, TO_AGENT),
    sessionRoot: path.join(config.sessionsDir, folder),
    sessionDir: path.join(config.sessionsDir, folder, '.claude'),
    proxyDir: path.join(config.proxyDir, folder),
  };
}

const isWithin = (child: string, parent: string) => child === parent || child.startsWith(`${parent}/`);

/**
 * What main must not read through its view of the project: secrets, the WhatsApp credentials and
 * database (store/), and every group's IPC and sessions (data/). NANOCLAW_HOME may be the project
 * root or live inside it, so its state paths are hidden too. Other groups' folders stay readable:
 * main is the admin.
 */
export function projectMasks(config: Config): { hostPath: string; kind: 'file' | 'dir' }[] {
  const root = config.projectRoot;
  const candidates: { hostPath: string; kind: 'file' | 'dir' }[] = [
    { hostPath: path.join(root, '.env'), kind: 'file' },
    { hostPath: path.join(root, 'store'), kind: 'dir' },
    { hostPath: path.join(root, 'data'), kind: 'dir' },
    { hostPath: config.envFile, kind: 'file' },
    { hostPath: config.storeDir, kind: 'dir' },
    { hostPath: config.dataDir, kind: 'dir' },
    { hostPath: config.configDir, kind: 'dir' },
  ];
  const seen = new Set<string>();
  return candidates.filter(({ hostPath }) => {
    if (hostPath === root || !isWithin(hostPath, root) || seen.has(hostPath)) return false;
    seen.add(hostPath);
    return true;
  });
}

/**
 * The mounts of one group's sandbox. Pure: it decides, prepareGroupDirs() creates. Extras come
 * already validated by the allowlist.
 */
export function buildMountPlan(group: RegisteredGroup, config: Config, extra: MountSpec[]): MountSpec[] {
  const p = groupPaths(config, group.folder);
  const plan: MountSpec[] = [
    { hostPath: p.groupDir, containerPath: CONTAINER_PATHS.group, readonly: false },
    { hostPath: p.globalDir, containerPath: CONTAINER_PATHS.global, readonly: true },
    { hostPath: p.fromAgentDir, containerPath: CONTAINER_PATHS.ipc, readonly: false },
    { hostPath: p.toAgentDir, containerPath: CONTAINER_PATHS.inbox, readonly: true },
    { hostPath: p.sessionDir, containerPath: CONTAINER_PATHS.session, readonly: false },
    { hostPath: p.proxyDir, containerPath: CONTAINER_PATHS.proxy, readonly: true },
  ];
  if (group.isMain) {
    // Read-only so the agent cannot rewrite the host that runs it.
    plan.push({ hostPath: config.projectRoot, containerPath: CONTAINER_PATHS.project, readonly: true });
    for (const mask of projectMasks(config)) {
      const inside = path.relative(config.projectRoot, mask.hostPath).split(path.sep).join('/');
      plan.push({
        hostPath: '/dev/null',
        containerPath: `${CONTAINER_PATHS.project}/${inside}`,
        readonly: true,
        mask: mask.kind,
      });
    }
  }
  return [...plan, ...extra];
}

/**
 * Creates the group's folders (and, for main, the masked paths: a mask needs something to sit
 * on). The group folder, the agent-to-host IPC part and the session dir can hold anything an
 * agent left there, so they are only touched through safe-fs. When the host runs as root, those
 * three are handed to the sandbox user (so the agent can write and nothing it makes is
 * root-owned); data/ipc/<folder> and the host-to-agent part stay the host's.
 */
export function prepareGroupDirs(
  group: RegisteredGroup,
  config: Config,
  sandbox: { uid: number; gid: number },
): void {
  const p = groupPaths(config, group.folder);
  fs.mkdirSync(p.globalDir, { recursive: true });
  fs.mkdirSync(p.proxyDir, { recursive: true });
  const handOver = hostIsRoot() && sandbox.uid !== 0;
  const own = (dir: SafeDir) => {
    if (!handOver) return;
    const self = dir.stat();
    if (self.uid !== sandbox.uid || self.gid !== sandbox.gid) {
      // Another sandbox uid (or an older version) owned it: hand over the whole tree, once.
      dir.chownSelf(sandbox.uid, sandbox.gid);
      dir.chownTree(sandbox.uid, sandbox.gid);
      return;
    }
    // Deep trees (cloned repos) are the agent's own already; the host adds only top-level files.
    for (const entry of dir.list()) {
      const stat = entry === 'logs' ? undefined : dir.lstat(entry);
      if (stat && stat.uid !== sandbox.uid) dir.chown(entry, sandbox.uid, sandbox.gid);
    }
  };
  withSafeDir(config.groupsDir, [group.folder], { create: true }, own);
  withSafeDir(config.sessionsDir, [group.folder, '.claude'], { create: true }, own);
  withSafeDir(config.ipcDir, [group.folder], { create: true }, (ipc) => {
    // Older versions mounted this folder read-write: take it back.
    if (hostIsRoot()) ipc.chownSelf(0, 0, 0o755);
    ipc.withSubdir(FROM_AGENT, { create: true, replace: true }, (from) => {
      for (const kind of ['messages', 'tasks']) from.subdir(kind, { create: true, replace: true }).close();
      own(from);
    });
    ipc.withSubdir(TO_AGENT, { create: true, replace: true }, (to) => {
      if (hostIsRoot()) to.chownSelf(0, 0, 0o755);
      for (const sub of [INPUT_DIR, MEDIA_DIR]) to.subdir(sub, { create: true, replace: true }).close();
    });
  });
  if (group.isMain) {
    for (const mask of projectMasks(config)) {
      if (mask.kind === 'dir') fs.mkdirSync(mask.hostPath, { recursive: true });
      else if (!fs.existsSync(mask.hostPath)) fs.writeFileSync(mask.hostPath, '', { mode: 0o600 });
    }
  }
}
