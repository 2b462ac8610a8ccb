import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { logger } from '../../logger.js';
import {
  hostIsRoot,
  RuntimeUnavailableError,
  SANDBOX_GID,
  SANDBOX_HOME,
  SANDBOX_UID,
  sandboxUser,
  sortMountsForApply,
  type MountSpec,
  type SandboxRuntime,
  type SandboxSpec,
} from '../runtime.js';
import { cliEnv, runCommand } from './cli.js';

export interface BwrapOptions {
  /** Host build of the agent-runner (container/agent-runner); it stands in for the image at /app. */
  agentRunnerDir: string;
  /** Host paths the sandbox user must be able to reach (checked by ensureRunning). */
  requiredPaths?: string[];
  stopGraceMs?: number;
}

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** The least of /etc that dynamic linking, TLS, time zones, fonts and name lookup need. */
const ETC_ENTRIES = [
  '/etc/alternatives',
  // Debian's chromium wrapper reads its flags from here.
  '/etc/chromium',
  '/etc/chromium.d',
  '/etc/ca-certificates',
  '/etc/fonts',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
  '/etc/nsswitch.conf',
  '/etc/ssl',
];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where a Node installed outside the system dirs (e.g. under /opt or nvm) is made visible. */
const NODE_PREFIX_IN_SANDBOX = '/opt/node';

/** Generated instead of bound, so the host's users and host names stay out of the sandbox. */
function syntheticEtc(): Record<string, string> {
  return {
    '/etc/passwd': `root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:${SANDBOX_UID}:${SANDBOX_GID}:node:${SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    '/etc/group': `root:x:0:\nnode:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`,
    '/etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
  };
}

function systemArgs(): string[] {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat?.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else if (stat?.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  for (const entry of ETC_ENTRIES) if (fs.existsSync(entry)) args.push('--ro-bind', entry, entry);
  return args;
}

/** Node outside the bound system dirs: bind its install prefix read-only. */
function nodePrefix(): string | null {
  const real = fs.realpathSync(process.execPath);
  if (SYSTEM_DIRS.some((dir) => real.startsWith(`${dir}/`))) return null;
  return path.dirname(path.dirname(real));
}

/**
 * What the agent image sets with ENV, where the host has it: there is no image to carry it here.
 * Not NODE_EXTRA_CA_CERTS: the runner makes no TLS connection and the agent's environment is
 * rebuilt from scratch (agent-runner sdk-env.ts), yet Node 20 parses the bundle at every start
 * (~50 ms on the cold-start path).
 */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  if (fs.existsSync('/usr/bin/chromium')) env.CHROME_PATH = '/usr/bin/chromium';
  return env;
}

function mountArgs(mount: MountSpec): string[] {
  if (mount.mask === 'dir') return ['--tmpfs', mount.containerPath, '--remount-ro', mount.containerPath];
  if (mount.mask === 'file') return ['--ro-bind', '/dev/null', mount.containerPath];
  return [mount.readonly ? '--ro-bind' : '--bind', mount.hostPath, mount.containerPath];
}

/**
 * The bwrap argument list. Data files are passed as file descriptors starting at `firstDataFd`, in
 * the order of `dataFiles`.
 */
export function bwrapArgs(
  spec: SandboxSpec,
  agentRunnerDir: string,
  dataFiles: string[],
  firstDataFd = 3,
): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--clearenv'];
  args.push('--hostname', 'sandbox', ...systemArgs());
  dataFiles.forEach((file, i) => args.push('--ro-bind-data', String(firstDataFd + i), file));
  const prefix = nodePrefix();
  if (prefix) args.push('--ro-bind', prefix, NODE_PREFIX_IN_SANDBOX);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', SANDBOX_HOME);
  if (fs.existsSync(agentRunnerDir)) args.push('--ro-bind', agentRunnerDir, '/app');
  for (const mount of sortMountsForApply(spec.mounts)) args.push(...mountArgs(mount));
  // Everything not mounted writable stays read-only, like a container's --read-only root.
  args.push('--remount-ro', '/');
  args.push('--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID), '--chdir', spec.workdir);
  const env: Record<string, string> = {
    PATH: prefix ? `${NODE_PREFIX_IN_SANDBOX}/bin:${DEFAULT_PATH}` : DEFAULT_PATH,
    HOME: SANDBOX_HOME,
    USER: 'node',
    ...imageEnv(),
    ...spec.env,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  args.push('--', ...(spec.command ?? ['node', '/app/dist/index.js']));
  return args;
}

/** bubblewrap: namespaces without a daemon. The "image" is the host build of the agent-runner. */
export class BwrapRuntime implements SandboxRuntime {
  readonly kind = 'bwrap' as const;
  private readonly running = new Map<string, ChildProcess>();

  constructor(private readonly options: BwrapOptions) {}

  /** As root, bwrap itself runs as the sandbox user so nothing it creates is root-owned. */
  private spawnIdentity(spec?: SandboxSpec): { uid?: number; gid?: number } {
    if (!hostIsRoot()) return {};
    const user = spec?.user ?? sandboxUser();
    return { uid: user.uid, gid: user.gid };
  }

  async ensureRunning(): Promise<void> {
    const version = await runCommand('bwrap', ['--version'], { timeoutMs: 10_000 });
    if (version.startError?.code === 'ENOENT')
      throw new RuntimeUnavailableError(
        'bubblewrap is not installed',
        'Install it (apt-get install bubblewrap) or install Docker (apt-get install docker.io)',
      );
    // A real sandbox start proves user namespaces work and the sandbox user can reach our files.
    const probeMounts: MountSpec[] = (this.options.requiredPaths ?? [])
      .filter((p) => fs.existsSync(p))
      .map((p, i) => ({ hostPath: p, containerPath: `/probe/${i}`, readonly: true }));
    const spec: SandboxSpec = {
      name: 'probe',
      image: 'probe',
      mounts: probeMounts,
      env: {},
      workdir: '/',
      labels: {},
      command: ['true'],
    };
    const probe = await runCommand('bwrap', bwrapArgs(spec, this.options.agentRunnerDir, []), {
      timeoutMs: 15_000,
      ...this.spawnIdentity(),
    });
    if (probe.code === 0) return;
    const reason = probe.stderr.trim().split('\n')[0] ?? `exit code ${probe.code}`;
    const hint = /permission denied|can't find source path/i.test(reason)
      ? `Make the project and NANOCLAW_HOME reachable by uid ${SANDBOX_UID} (e.g. keep them outside /root, or chmod o+x their parent directories)`
      : 'Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ also kernel.apparmor_restrict_unprivileged_userns=0), or use Docker';
    throw new RuntimeUnavailableError(`bubblewrap cannot start a sandbox (${reason})`, hint);
  }

  async imageExists(_image: string): Promise<boolean> {
    return fs.existsSync(path.join(this.options.agentRunnerDir, 'dist', 'index.js'));
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const etc = syntheticEtc();
    const files = Object.keys(etc);
    const child = spawn('bwrap', bwrapArgs(spec, this.options.agentRunnerDir, files), {
      stdio: ['pipe', 'pipe', 'pipe', ...files.map(() => 'pipe' as const)],
      env: cliEnv(),
      cwd: '/',
      // Own process group, so stop() can signal bwrap and everything it started at once.
      detached: true,
      ...this.spawnIdentity(spec),
    });
    files.forEach((file, i) => {
      const stream = child.stdio[3 + i];
      if (!(stream instanceof Writable)) return;
      stream.on('error', () => {}); // bwrap closes it after reading, or failed to start
      stream.end(etc[file]);
    });
    this.running.set(spec.name, child);
    child.once('exit', () => {
      if (this.running.get(spec.name) === child) this.running.delete(spec.name);
    });
    return child;
  }

  async stop(name: string): Promise<void> {
    const child = this.running.get(name);
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signalGroup(child.pid, 'SIGTERM');
    const graceMs = this.options.stopGraceMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
    if ((await Promise.race([exited, graceOver])) === 'late') {
      logger.warn({ name }, 'sandbox ignored SIGTERM; killing it');
      signalGroup(child.pid, 'SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  }

  /** Sandboxes die with the host (--die-with-parent), so a new host never finds leftovers. */
  async cleanupOrphans(_instanceId: string): Promise<string[]> {
    return [];
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
