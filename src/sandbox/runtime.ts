import type { ChildProcess } from 'node:child_process';
import type { Config, RuntimeKind } from '../config.js';

export interface MountSpec {
  hostPath: string;
  containerPath: string;
  readonly: boolean;
  /** Hides containerPath; hostPath is then /dev/null, so a driver that ignores masks fails to start. */
  mask?: 'file' | 'dir';
}

export interface SandboxUser {
  uid: number;
  gid: number;
}

export interface SandboxSpec {
  name: string;
  image: string;
  mounts: MountSpec[];
  env: Record<string, string>;
  workdir: string;
  labels: Record<string, string>;
  user?: SandboxUser;
  command?: string[];
}

export interface SandboxRuntime {
  readonly kind: RuntimeKind;
  ensureRunning(): Promise<void>;
  imageExists(image: string): Promise<boolean>;
  spawn(spec: SandboxSpec): ChildProcess;
  stop(name: string): Promise<void>;
  cleanupOrphans(instanceId: string): Promise<string[]>;
}

export class RuntimeUnavailableError extends Error {
  override name = 'RuntimeUnavailableError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(`${message}. ${hint}`);
  }
}

export const INSTANCE_LABEL = 'nanoclaw.instance';
export const GROUP_LABEL = 'nanoclaw.group';
export const SANDBOX_HOME = '/home/node';

export const hostIsRoot = (): boolean => process.getuid?.() === 0;

/** A root host runs sandboxes as SANDBOX_UID; any other user as itself. */
export function sandboxUser(config: Pick<Config, 'sandboxUid'>): SandboxUser {
  const [uid, gid] = [process.getuid?.(), process.getgid?.()];
  return uid && gid !== undefined ? { uid, gid } : { uid: config.sandboxUid, gid: config.sandboxUid };
}

/** The sandbox user as "node" (for os.userInfo(), shells, git), nothing of the host's. */
export function sandboxAccountFiles({ uid, gid }: SandboxUser): { passwd: string; group: string } {
  const own = (id: number, line: string) => (id === 0 || id === 65534 ? '' : `${line}\n`);
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${own(uid, `node:x:${uid}:${gid}:node:${SANDBOX_HOME}:/bin/sh`)}nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\n${own(gid, `node:x:${gid}:`)}nogroup:x:65534:\n`,
  };
}

/** Parents first (stable): a mask or nested bind lands on its parent. */
export function sortMountsForApply(mounts: MountSpec[]): MountSpec[] {
  const depth = (m: MountSpec) => m.containerPath.split('/').filter(Boolean).length;
  return [...mounts].sort((a, b) => depth(a) - depth(b));
}

export const isWithin = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
