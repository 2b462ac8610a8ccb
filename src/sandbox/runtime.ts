import type { ChildProcess } from 'node:child_process';
import type { Config, RuntimeKind } from '../config.js';

export interface MountSpec {
  hostPath: string;
  containerPath: string;
  readonly: boolean;
  /**
   * Hides whatever is at containerPath inside a parent mount (main's view of the project hides
   * .env, store/ and data/). `hostPath` is /dev/null for masks, so a driver that forgot to handle
   * them fails to start (a file cannot be bound over a directory) instead of exposing anything.
   */
  mask?: 'file' | 'dir';
}

export interface SandboxSpec {
  name: string;
  image: string;
  mounts: MountSpec[];
  env: Record<string, string>;
  workdir: string;
  labels: Record<string, string>;
  /** uid:gid to run as */
  user?: SandboxUser;
  /** Replaces the image's own command (the agent-runner); tests run small scripts this way. */
  command?: string[];
}

export interface SandboxRuntime {
  readonly kind: RuntimeKind;
  /** Throws RuntimeUnavailableError with an install/start hint. */
  ensureRunning(): Promise<void>;
  imageExists(image: string): Promise<boolean>;
  /** stdio: pipe, pipe, pipe. May throw when the spec cannot be expressed for this runtime. */
  spawn(spec: SandboxSpec): ChildProcess;
  /** Graceful stop, then kill. Resolves once the sandbox is gone (or was never there). */
  stop(name: string): Promise<void>;
  /** Stops only sandboxes labelled with this instance; returns their names. */
  cleanupOrphans(instanceId: string): Promise<string[]>;
}

export class RuntimeUnavailableError extends Error {
  constructor(
    message: string,
    /** What the person should do, e.g. "apt-get install docker.io". */
    readonly hint: string,
  ) {
    super(`${message}. ${hint}`);
    this.name = 'RuntimeUnavailableError';
  }
}

/** Every sandbox carries this label so orphan clean-up touches only this installation's. */
export const INSTANCE_LABEL = 'nanoclaw.instance';
export const GROUP_LABEL = 'nanoclaw.group';

export const SANDBOX_HOME = '/home/node';

export interface SandboxUser {
  uid: number;
  gid: number;
}

/**
 * Who a sandbox runs as on the host. As root, the configured SANDBOX_UID (by default a uid no
 * account has, see config.ts), so nothing the agent writes is root-owned or belongs to a real
 * person; as an ordinary user, that user, so its files stay manageable by their owner.
 */
export function sandboxUser(config: Pick<Config, 'sandboxUid'>): SandboxUser {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === undefined || gid === undefined || uid === 0)
    return { uid: config.sandboxUid, gid: config.sandboxUid };
  return { uid, gid };
}

/**
 * The passwd and group files a sandbox sees: its own user as "node" with the image's home, so
 * tools that look the user up (os.userInfo(), the shell, git) work for any uid, and nothing of
 * the host's or the image's accounts shows.
 */
export function sandboxAccountFiles(user: SandboxUser): { passwd: string; group: string } {
  const passwd = [
    'root:x:0:0:root:/root:/usr/sbin/nologin',
    `node:x:${user.uid}:${user.gid}:node:${SANDBOX_HOME}:/bin/sh`,
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  ];
  const group = ['root:x:0:', `node:x:${user.gid}:`, 'nogroup:x:65534:'];
  // A host user whose own uid is 0 or 65534 must not get a second line for it.
  if (user.uid === 0 || user.uid === 65534) passwd.splice(1, 1);
  if (user.gid === 0 || user.gid === 65534) group.splice(1, 1);
  return { passwd: `${passwd.join('\n')}\n`, group: `${group.join('\n')}\n` };
}

export function hostIsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Parents before children, so a mask or a nested bind lands on top of the mount it hides into. */
export function sortMountsForApply(mounts: MountSpec[]): MountSpec[] {
  const depth = (p: string) => p.split('/').filter(Boolean).length;
  return mounts
    .map((mount, index) => ({ mount, index }))
    .sort((a, b) => depth(a.mount.containerPath) - depth(b.mount.containerPath) || a.index - b.index)
    .map((entry) => entry.mount);
}
