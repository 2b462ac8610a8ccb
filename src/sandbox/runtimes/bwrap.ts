import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { DEFAULT_SANDBOX_UID } from '../../config.js';
import { logger } from '../../logger.js';
import {
  cliEnv,
  DEFAULT_PATH,
  hostIsRoot,
  runCommand,
  RuntimeUnavailableError,
  SANDBOX_HOME,
  sandboxAccountFiles,
  type SandboxRuntime,
  type SandboxSpec,
  type SandboxUser,
  sandboxUser,
  sortMountsForApply,
} from '../runtime.js';
import { DEFAULT_LIMITS, detectCgroupSupport, SandboxCgroup } from './cgroup.js';
import type { CgroupLimits, CgroupSupport } from './cgroup.js';
import { compileSeccompFilter } from './seccomp.js';

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
const ETC =
  'alternatives chromium chromium.d ca-certificates fonts ld.so.cache ld.so.conf ld.so.conf.d localtime nsswitch.conf ssl';
const NODE_PREFIX = '/opt/node';
const AGENT_COMMAND = ['node', '/app/dist/index.js'];

export function bwrapArgs(
  spec: SandboxSpec,
  { agentRunnerDir, user }: { agentRunnerDir: string; user: SandboxUser },
): string[] {
  // --unshare-user explicitly: --unshare-all only tries, and --disable-userns needs it to succeed.
  const args = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];
  args.push('--clearenv', '--hostname', 'sandbox');
  for (const dir of SYSTEM_DIRS) {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat?.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else if (stat) args.push('--ro-bind', dir, dir);
  }
  for (const entry of ETC.split(' ').map((name) => `/etc/${name}`))
    if (fs.existsSync(entry)) args.push('--ro-bind', entry, entry);
  const node = fs.realpathSync(process.execPath);
  const prefix = !SYSTEM_DIRS.some((dir) => node.startsWith(`${dir}/`)) && path.dirname(path.dirname(node));
  if (prefix) args.push('--ro-bind', prefix, NODE_PREFIX);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', SANDBOX_HOME);
  if (fs.existsSync(agentRunnerDir)) args.push('--ro-bind', agentRunnerDir, '/app');
  for (const { hostPath, containerPath: to, readonly, mask } of sortMountsForApply(spec.mounts))
    if (mask === 'dir') args.push('--tmpfs', to, '--remount-ro', to);
    else args.push(mask || readonly ? '--ro-bind' : '--bind', mask ? '/dev/null' : hostPath, to);
  args.push('--remount-ro', '/', '--uid', `${user.uid}`, '--gid', `${user.gid}`, '--chdir', spec.workdir);
  const env = {
    PATH: prefix ? `${NODE_PREFIX}/bin:${DEFAULT_PATH}` : DEFAULT_PATH,
    HOME: SANDBOX_HOME,
    USER: 'node',
    ...(fs.existsSync('/usr/bin/chromium') && { CHROME_PATH: '/usr/bin/chromium' }),
    ...spec.env,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  return [...args, '--', ...(spec.command ?? AGENT_COMMAND)];
}

const PROBE = { image: '', env: {}, workdir: '/', labels: {}, command: ['true'] };
const feed = (stream: unknown, data: string | Buffer) => (stream as Writable).on('error', () => {}).end(data);

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pid !== undefined) process.kill(-pid, signal);
  } catch {
    /* gone */
  }
}

export class BwrapRuntime implements SandboxRuntime {
  readonly kind = 'bwrap' as const;
  private readonly running = new Map<string, ChildProcess>();
  private readonly removals = new WeakMap<ChildProcess, Promise<void>>();
  private readonly seccomp = compileSeccompFilter();
  private support?: CgroupSupport;

  constructor(
    private readonly options: {
      agentRunnerDir: string;
      requiredPaths?: string[];
      stopGraceMs?: number;
      user?: SandboxUser;
      limits?: CgroupLimits;
      cgroups?: () => CgroupSupport;
    },
  ) {}

  async ensureRunning(): Promise<void> {
    if ((await runCommand('bwrap', ['--version'])).missing)
      throw new RuntimeUnavailableError('bubblewrap is not installed', 'apt-get install bubblewrap');
    // A real start proves namespaces, seccomp, cgroups and file access.
    const mounts = (this.options.requiredPaths ?? [])
      .filter((p) => fs.existsSync(p))
      .map((p, i) => ({ hostPath: p, containerPath: `/probe/${i}`, readonly: true }));
    const child = this.spawn({ ...PROBE, name: `nanoclaw-probe-${process.pid}-${Date.now()}`, mounts });
    let stderr = '';
    child.stdout?.resume();
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), 15_000);
    const [code] = await once(child, 'close').catch((err: Error) => ((stderr = err.message), [null]));
    clearTimeout(timer);
    await this.removals.get(child); // so `nanoclaw doctor` leaves no cgroup behind
    if (code === 0) return;
    const reason = stderr.trim().split('\n')[0] || `exit code ${code}`;
    const hint = /permission denied|can't find source path/i.test(reason)
      ? `Make the project and NANOCLAW_HOME reachable by uid ${this.userFor().uid} (not under /root)`
      : 'Use bubblewrap 0.8+ with user namespaces allowed, or Docker';
    throw new RuntimeUnavailableError(`bubblewrap cannot start a sandbox (${reason})`, hint);
  }

  private userFor(spec?: SandboxSpec): SandboxUser {
    return spec?.user ?? this.options.user ?? sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID });
  }

  async imageExists(): Promise<boolean> {
    return fs.existsSync(path.join(this.options.agentRunnerDir, 'dist', 'index.js'));
  }

  /** bwrap waits for its options on fd 3 while it is moved into the cgroup. */
  spawn(spec: SandboxSpec): ChildProcess {
    const user = this.userFor(spec);
    const { passwd, group } = sandboxAccountFiles(user);
    const piped = [passwd, group, '127.0.0.1 localhost\n::1 localhost\n', this.seccomp];
    // Accounts and hosts on fds 4–6, so the host's users stay out; the seccomp filter on 7.
    const args = ['passwd', 'group', 'hosts'].flatMap((f, i) => ['--ro-bind-data', `${4 + i}`, `/etc/${f}`]);
    args.push('--seccomp', '7', ...bwrapArgs(spec, { agentRunnerDir: this.options.agentRunnerDir, user }));
    const split = args.length - (spec.command ?? AGENT_COMMAND).length - 1; // the '--'
    // NUL separates the piped options: one inside a value would smuggle in options of its own.
    if (args.some((arg) => arg.includes('\0'))) throw new Error('sandbox spec contains a NUL byte');
    const child = spawn('bwrap', ['--args', '3', ...args.slice(split)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', ...piped.map(() => 'pipe' as const)],
      env: cliEnv(),
      cwd: '/',
      detached: true, // its own process group: stop() reaches all of it
      ...(hostIsRoot() && { uid: user.uid, gid: user.gid }), // so nothing bwrap creates is root-owned
    });
    piped.forEach((data, i) => feed(child.stdio[4 + i], data));
    let cgroup: SandboxCgroup | null = null;
    try {
      if (child.pid !== undefined) {
        this.support ??= (this.options.cgroups ?? detectCgroupSupport)();
        cgroup = SandboxCgroup.create(this.support, spec.name, this.options.limits ?? DEFAULT_LIMITS);
        cgroup?.attach(child.pid);
      }
      feed(child.stdio[3], `${args.slice(0, split).join('\0')}\0`);
    } catch (err) {
      // Fail closed: a sandbox that could not get its limits does not start.
      logger.error({ name: spec.name, err: String(err) }, 'sandbox gets no cgroup; not starting it');
      signalGroup(child.pid, 'SIGKILL');
    }
    this.running.set(spec.name, child);
    child.once('exit', () => {
      if (this.running.get(spec.name) === child) this.running.delete(spec.name);
      if (cgroup) this.removals.set(child, cgroup.remove());
    });
    return child;
  }

  async stop(name: string): Promise<void> {
    const child = this.running.get(name);
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    signalGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), this.options.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(timer);
  }

  async cleanupOrphans(): Promise<string[]> {
    return [];
  }
}
