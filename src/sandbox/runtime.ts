import { execFile, type ChildProcess } from 'node:child_process';
import type { Config, RuntimeKind } from '../config.js';

export interface MountSpec {
  hostPath: string;
  containerPath: string;
  readonly: boolean;
  /** Hides containerPath; hostPath is /dev/null, so a driver that ignores masks fails. */
  mask?: 'file' | 'dir';
}

export type SandboxUser = { uid: number; gid: number };

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

export function sandboxUser(config: Pick<Config, 'sandboxUid'>): SandboxUser {
  const [uid, gid] = [process.getuid?.(), process.getgid?.()];
  return uid && gid !== undefined ? { uid, gid } : { uid: config.sandboxUid, gid: config.sandboxUid };
}

export function sandboxAccountFiles({ uid, gid }: SandboxUser): { passwd: string; group: string } {
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:${uid}:${gid}:node:${SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\nnode:x:${gid}:\nnogroup:x:65534:\n`,
  };
}

export function sortMountsForApply(mounts: MountSpec[]): MountSpec[] {
  const depth = (m: MountSpec) => m.containerPath.split('/').filter(Boolean).length;
  return [...mounts].sort((a, b) => depth(a) - depth(b));
}

export const keyValues = (flag: string, values: Record<string, string>) =>
  Object.entries(values).flatMap(([key, value]) => [flag, `${key}=${value}`]);

export const isWithin = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function cliEnv(): Record<string, string> {
  const keys =
    'PATH HOME LANG XDG_RUNTIME_DIR CONTAINER_HOST CONTAINERS_CONF DOCKER_HOST DOCKER_CONFIG DOCKER_CONTEXT DOCKER_CERT_PATH DOCKER_TLS_VERIFY';
  const passed = keys.split(' ').flatMap((key) => (process.env[key] ? [[key, process.env[key]]] : []));
  return { PATH: DEFAULT_PATH, ...Object.fromEntries(passed) };
}

export function runCommand(bin: string, args: string[], timeout = 15_000) {
  const options = { env: cliEnv(), cwd: '/', timeout, killSignal: 'SIGKILL' as const, maxBuffer: Infinity };
  return new Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }>((resolve) => {
    execFile(bin, args, options, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, missing: err?.code === 'ENOENT' });
    }).stdin?.end();
  });
}
