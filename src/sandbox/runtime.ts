import type { ChildProcess } from 'node:child_process';
import type { RuntimeKind } from '../config.js';

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
  user?: { uid: number; gid: number };
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

/** The unprivileged user agents run as when the host itself runs as root. */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
export const SANDBOX_HOME = '/home/node';

/**
 * Who a sandbox runs as on the host. As root we drop to 1000 so nothing the agent writes is
 * root-owned; as an ordinary user we keep that user, so its files stay manageable by the owner.
 */
export function sandboxUser(): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? SANDBOX_UID;
  const gid = process.getgid?.() ?? SANDBOX_GID;
  return uid === 0 ? { uid: SANDBOX_UID, gid: SANDBOX_GID } : { uid, gid };
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
