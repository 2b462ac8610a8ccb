import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { DEFAULT_SANDBOX_UID } from '../../config.js';
import { logger } from '../../logger.js';
import {
  hostIsRoot,
  RuntimeUnavailableError,
  SANDBOX_HOME,
  sandboxAccountFiles,
  sandboxUser,
  sortMountsForApply,
  type MountSpec,
  type SandboxRuntime,
  type SandboxSpec,
  type SandboxUser,
} from '../runtime.js';
import {
  DEFAULT_LIMITS,
  detectCgroupSupport,
  removeStaleCgroups,
  SandboxCgroup,
  type CgroupLimits,
  type CgroupSupport,
} from './cgroup.js';
import { cliEnv, runCommand } from './cli.js';
import { compileSeccompFilter } from './seccomp.js';

export interface BwrapOptions {
  /** Host build of the agent-runner (container/agent-runner); it stands in for the image at /app. */
  agentRunnerDir: string;
  /** Host paths the sandbox user must be able to reach (checked by ensureRunning). */
  requiredPaths?: string[];
  stopGraceMs?: number;
  /** Who runs a sandbox whose spec names no user (the start probe): sandboxUser(config). */
  user?: SandboxUser;
  /** pids and memory caps per sandbox; the docker driver's by default. */
  limits?: CgroupLimits;
  /** Where sandbox cgroups go; detected on first use by default. */
  cgroups?: () => CgroupSupport;
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
function syntheticEtc(user: SandboxUser): Record<string, string> {
  const accounts = sandboxAccountFiles(user);
  return {
    '/etc/passwd': accounts.passwd,
    '/etc/group': accounts.group,
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

export interface BwrapArgsOptions {
  agentRunnerDir: string;
  user: SandboxUser;
  /** Synthetic files, passed as file descriptors from `firstDataFd` on, in this order. */
  dataFiles?: string[];
  firstDataFd?: number;
  /** The descriptor the compiled seccomp program arrives on. */
  seccompFd?: number;
}

/** The bwrap argument list (what spawn() feeds through --args). */
export function bwrapArgs(spec: SandboxSpec, options: BwrapArgsOptions): string[] {
  const { user, dataFiles = [], firstDataFd = 3 } = options;
  // --unshare-user explicitly: --unshare-all only tries, and --disable-userns needs it to succeed.
  const args = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent'];
  args.push('--new-session', '--clearenv', '--hostname', 'sandbox', ...systemArgs());
  dataFiles.forEach((file, i) => args.push('--ro-bind-data', String(firstDataFd + i), file));
  const prefix = nodePrefix();
  if (prefix) args.push('--ro-bind', prefix, NODE_PREFIX_IN_SANDBOX);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', SANDBOX_HOME);
  if (fs.existsSync(options.agentRunnerDir)) args.push('--ro-bind', options.agentRunnerDir, '/app');
  for (const mount of sortMountsForApply(spec.mounts)) args.push(...mountArgs(mount));
  // Everything not mounted writable stays read-only, like a container's --read-only root.
  args.push('--remount-ro', '/');
  args.push('--uid', String(user.uid), '--gid', String(user.gid), '--chdir', spec.workdir);
  if (options.seccompFd !== undefined) args.push('--seccomp', String(options.seccompFd));
  const env: Record<string, string> = {
    PATH: prefix ? `${NODE_PREFIX_IN_SANDBOX}/bin:${DEFAULT_PATH}` : DEFAULT_PATH,
    HOME: SANDBOX_HOME,
    USER: 'node',
    ...imageEnv(),
    ...spec.env,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  args.push('--', ...sandboxCommand(spec));
  return args;
}

function sandboxCommand(spec: SandboxSpec): string[] {
  return spec.command ?? ['node', '/app/dist/index.js'];
}

/** Writes a payload into one of the child's extra pipes; bwrap closes it after reading. */
function feed(stream: unknown, payload: string | Buffer): void {
  if (!(stream instanceof Writable)) return;
  stream.on('error', () => {}); // bwrap exited (or never started) before reading it
  stream.end(payload);
}

/** bubblewrap: namespaces without a daemon. The "image" is the host build of the agent-runner. */
export class BwrapRuntime implements SandboxRuntime {
  readonly kind = 'bwrap' as const;
  private readonly running = new Map<string, ChildProcess>();
  private cgroupSupport: CgroupSupport | undefined;
  /** Each exited sandbox's cgroup removal, for whoever must not return before it (the probe). */
  private readonly removals = new WeakMap<ChildProcess, Promise<void>>();
  private readonly seccomp = compileSeccompFilter();

  constructor(private readonly options: BwrapOptions) {}

  private userFor(spec?: SandboxSpec): SandboxUser {
    return spec?.user ?? this.options.user ?? sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID });
  }

  /** As root, bwrap itself runs as the sandbox user so nothing it creates is root-owned. */
  private spawnIdentity(user: SandboxUser): { uid?: number; gid?: number } {
    return hostIsRoot() ? { uid: user.uid, gid: user.gid } : {};
  }

  /** Detected once; a machine without usable cgroups logs it once and runs without limits. */
  private cgroups(): CgroupSupport {
    if (!this.cgroupSupport) {
      this.cgroupSupport = this.options.cgroups?.() ?? detectCgroupSupport();
      const { missing, reason, version } = this.cgroupSupport;
      if (missing.length > 0)
        logger.warn({ missing, reason }, 'bwrap sandboxes run without some limits (see nanoclaw doctor)');
      else logger.debug({ version }, 'bwrap sandbox limits via cgroups');
    }
    return this.cgroupSupport;
  }

  async ensureRunning(): Promise<void> {
    const version = await runCommand('bwrap', ['--version'], { timeoutMs: 10_000 });
    if (version.startError?.code === 'ENOENT')
      throw new RuntimeUnavailableError(
        'bubblewrap is not installed',
        'Install it (apt-get install bubblewrap) or install Docker (apt-get install docker.io)',
      );
    // A real sandbox start proves user namespaces, the seccomp filter and the cgroups work, and
    // that the sandbox user can reach our files.
    const probeMounts: MountSpec[] = (this.options.requiredPaths ?? [])
      .filter((p) => fs.existsSync(p))
      .map((p, i) => ({ hostPath: p, containerPath: `/probe/${i}`, readonly: true }));
    const probe = await this.runProbe({
      name: `nanoclaw-probe-${process.pid}-${Date.now()}`,
      image: 'probe',
      mounts: probeMounts,
      env: {},
      workdir: '/',
      labels: {},
      command: ['true'],
    });
    if (probe.code === 0) return;
    const reason = probe.stderr.trim().split('\n')[0] || `exit code ${probe.code}`;
    const uid = this.userFor().uid;
    let hint =
      'Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ also kernel.apparmor_restrict_unprivileged_userns=0), or use Docker';
    if (/permission denied|can't find source path/i.test(reason))
      hint = `Make the project and NANOCLAW_HOME reachable by uid ${uid} (e.g. keep them outside /root, or chmod o+x their parent directories)`;
    else if (/unknown option|disable-userns/i.test(reason))
      hint = 'Install bubblewrap 0.8 or newer, not setuid (sandboxes need --disable-userns), or use Docker';
    throw new RuntimeUnavailableError(`bubblewrap cannot start a sandbox (${reason})`, hint);
  }

  private runProbe(spec: SandboxSpec): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const child = this.spawn(spec);
      let stderr = '';
      const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), 15_000);
      child.stdout?.resume();
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve({ code: null, stderr: err.message });
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        // A short-lived caller (`nanoclaw doctor`) would otherwise exit before the cgroup is gone.
        void (this.removals.get(child) ?? Promise.resolve()).then(() => resolve({ code, stderr }));
      });
    });
  }

  async imageExists(_image: string): Promise<boolean> {
    return fs.existsSync(path.join(this.options.agentRunnerDir, 'dist', 'index.js'));
  }

  /**
   * bwrap reads its arguments from fd 3 (--args) before it does anything else, so it waits there
   * while it is moved into the sandbox's cgroup: every process it starts is born inside.
   */
  spawn(spec: SandboxSpec): ChildProcess {
    const user = this.userFor(spec);
    const etc = syntheticEtc(user);
    const files = Object.keys(etc);
    const args = bwrapArgs(spec, {
      agentRunnerDir: this.options.agentRunnerDir,
      user,
      dataFiles: files,
      firstDataFd: 4,
      seccompFd: 4 + files.length,
    });
    const split = args.length - sandboxCommand(spec).length - 1; // at the '--'; an env value may be '--' too
    // NUL separates the piped options: one inside a value would smuggle in options of its own.
    if (args.some((arg) => arg.includes('\0'))) throw new Error('sandbox spec contains a NUL byte');
    // The options wait in the pipe; the command stays on the command line, where bwrap wants it.
    const child = spawn('bwrap', ['--args', '3', ...args.slice(split)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', ...files.map(() => 'pipe' as const), 'pipe'],
      env: cliEnv(),
      cwd: '/',
      // Own process group, so stop() can signal bwrap and everything it started at once.
      detached: true,
      ...this.spawnIdentity(user),
    });
    files.forEach((file, i) => feed(child.stdio[4 + i], etc[file] ?? ''));
    feed(child.stdio[4 + files.length], this.seccomp);
    const cgroup = child.pid === undefined ? null : this.joinCgroup(spec.name, child.pid);
    // Fail closed: a sandbox that should have limits and could not get them does not start.
    if (cgroup === 'failed') signalGroup(child.pid, 'SIGKILL');
    else feed(child.stdio[3], `${args.slice(0, split).join('\0')}\0`);
    this.running.set(spec.name, child);
    child.once('exit', () => {
      if (this.running.get(spec.name) === child) this.running.delete(spec.name);
      if (cgroup instanceof SandboxCgroup) this.removals.set(child, cgroup.remove());
    });
    return child;
  }

  private joinCgroup(name: string, pid: number): SandboxCgroup | null | 'failed' {
    let cgroup: SandboxCgroup | null = null;
    try {
      cgroup = SandboxCgroup.create(this.cgroups(), name, this.options.limits ?? DEFAULT_LIMITS);
      cgroup?.attach(pid);
      return cgroup;
    } catch (err) {
      logger.error({ name, err: String(err) }, 'cannot put the sandbox in its cgroup; not starting it');
      if (cgroup) void cgroup.remove();
      return 'failed';
    }
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

  /**
   * Sandboxes die with the host (--die-with-parent), so a new host never finds leftovers; only the
   * empty cgroups a killed host could not remove.
   */
  async cleanupOrphans(_instanceId: string): Promise<string[]> {
    const removed = removeStaleCgroups(this.cgroups());
    if (removed > 0) logger.info({ removed }, 'removed stale sandbox cgroups');
    return [];
  }
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
