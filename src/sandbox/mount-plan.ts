import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { RegisteredGroup } from '../types.js';
import { hostIsRoot, SANDBOX_HOME, type MountSpec } from './runtime.js';

export const CONTAINER_PATHS = {
  group: '/workspace/group',
  global: '/workspace/global',
  ipc: '/workspace/ipc',
  session: `${SANDBOX_HOME}/.claude`,
  proxy: '/run/nanoclaw',
  project: '/workspace/project',
} as const;

/** Host directories that belong to one group. */
export function groupPaths(config: Config, folder: string) {
  const ipcDir = path.join(config.ipcDir, folder);
  return {
    groupDir: path.join(config.groupsDir, folder),
    logsDir: path.join(config.groupsDir, folder, 'logs'),
    globalDir: path.join(config.groupsDir, 'global'),
    ipcDir,
    ipcSubdirs: ['messages', 'tasks', 'input'].map((sub) => path.join(ipcDir, sub)),
    inputDir: path.join(ipcDir, 'input'),
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
    { hostPath: p.ipcDir, containerPath: CONTAINER_PATHS.ipc, readonly: false },
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

/** A directory the host writes into must be a real one, not a link an agent planted. */
function ensureRealDir(dir: string): void {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) fs.rmSync(dir, { force: true });
  fs.mkdirSync(dir, { recursive: true });
}

function chownTree(dir: string, uid: number, gid: number): void {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.uid !== uid || stat.gid !== gid) fs.lchownSync(dir, uid, gid);
  if (!stat.isDirectory()) return; // lstat: symlinks are never followed
  for (const entry of fs.readdirSync(dir)) chownTree(path.join(dir, entry), uid, gid);
}

/**
 * Creates the group's directories (and, for main, the masked paths: a mask needs something to sit
 * on). When the host runs as root the writable ones are handed to the sandbox user, so the agent
 * can write and nothing it makes is root-owned. lchown throughout: an agent may plant symlinks.
 */
export function prepareGroupDirs(
  group: RegisteredGroup,
  config: Config,
  sandbox: { uid: number; gid: number },
): void {
  const p = groupPaths(config, group.folder);
  for (const dir of [p.groupDir, p.globalDir, p.ipcDir, p.sessionDir, p.proxyDir])
    fs.mkdirSync(dir, { recursive: true });
  for (const dir of [p.logsDir, ...p.ipcSubdirs]) ensureRealDir(dir);
  if (group.isMain) {
    for (const mask of projectMasks(config)) {
      if (mask.kind === 'dir') fs.mkdirSync(mask.hostPath, { recursive: true });
      else if (!fs.existsSync(mask.hostPath)) fs.writeFileSync(mask.hostPath, '', { mode: 0o600 });
    }
  }
  if (!hostIsRoot() || sandbox.uid === 0) return;
  const { uid, gid } = sandbox;
  // The group folder's top level only: deep trees (cloned repos) are the agent's own already.
  fs.lchownSync(p.groupDir, uid, gid);
  for (const entry of fs.readdirSync(p.groupDir))
    if (entry !== 'logs') fs.lchownSync(path.join(p.groupDir, entry), uid, gid);
  for (const dir of [p.ipcDir, ...p.ipcSubdirs]) fs.lchownSync(dir, uid, gid);
  chownTree(p.sessionRoot, uid, gid);
}
