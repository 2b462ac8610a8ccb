import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
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
} from '../runtime.js';
import { sortMountsForApply, type SandboxRuntime, type SandboxSpec, type SandboxUser } from '../runtime.js';
import { DEFAULT_LIMITS, detectCgroupSupport, removeStaleCgroups, SandboxCgroup } from './cgroup.js';
import type { CgroupLimits, CgroupSupport } from './cgroup.js';
import { cliEnv, DEFAULT_PATH, runCommand } from './cli.js';
import { compileSeccompFilter } from './seccomp.js';

interface BwrapOptions {
  /** The host build of the agent-runner, bound at /app: the "image". */
  agentRunnerDir: string;
  requiredPaths?: string[];
  stopGraceMs?: number;
  user?: SandboxUser;
  limits?: CgroupLimits;
  cgroups?: () => CgroupSupport;
}

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** The least of /etc that linking, TLS, time zones, fonts, name lookup and chromium need. */
const ETC_ENTRIES =
  'alternatives chromium chromium.d ca-certificates fonts ld.so.cache ld.so.conf ld.so.conf.d localtime nsswitch.conf ssl';
const NODE_PREFIX = '/opt/node';
const AGENT_COMMAND = ['node', '/app/dist/index.js'];
/** Generated, so the host's users and names stay out; fds 4–6, the seccomp filter on 7. */
const PIPED_ETC = ['/etc/passwd', '/etc/group', '/etc/hosts'];

export function bwrapArgs(
  spec: SandboxSpec,
  opts: { agentRunnerDir: string; user: SandboxUser; piped?: boolean },
): string[] {
  const { user, piped } = opts;
  // --unshare-user explicitly: --unshare-all only tries, and --disable-userns needs it to succeed.
  const args = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];
  args.push('--clearenv', '--hostname', 'sandbox');
  for (const dir of SYSTEM_DIRS) {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat?.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else if (stat?.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  for (const entry of ETC_ENTRIES.split(' ').map((name) => `/etc/${name}`))
    if (fs.existsSync(entry)) args.push('--ro-bind', entry, entry);
  if (piped) PIPED_ETC.forEach((file, i) => args.push('--ro-bind-data', `${4 + i}`, file));
  const node = fs.realpathSync(process.execPath);
  const prefix = !SYSTEM_DIRS.some((dir) => node.startsWith(`${dir}/`)) && path.dirname(path.dirname(node));
  if (prefix) args.push('--ro-bind', prefix, NODE_PREFIX);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', SANDBOX_HOME);
  if (fs.existsSync(opts.agentRunnerDir)) args.push('--ro-bind', opts.agentRunnerDir, '/app');
  for (const { hostPath, containerPath: to, readonly, mask } of sortMountsForApply(spec.mounts)) {
    if (mask === 'dir') args.push('--tmpfs', to, '--remount-ro', to);
    else args.push(mask || readonly ? '--ro-bind' : '--bind', mask ? '/dev/null' : hostPath, to);
  }
  // The root stays read-only, like a container's --read-only.
  args.push('--remount-ro', '/', '--uid', `${user.uid}`, '--gid', `${user.gid}`, '--chdir', spec.workdir);
  if (piped) args.push('--seccomp', `${4 + PIPED_ETC.length}`);
  const env: Record<string, string> = {
    PATH: prefix ? `${NODE_PREFIX}/bin:${DEFAULT_PATH}` : DEFAULT_PATH,
    HOME: SANDBOX_HOME,
    USER: 'node',
    // What the agent image sets. Not NODE_EXTRA_CA_CERTS: Node would parse it at every cold start.
    ...(fs.existsSync('/usr/bin/chromium') && { CHROME_PATH: '/usr/bin/chromium' }),
    ...spec.env,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  return [...args, '--', ...(spec.command ?? AGENT_COMMAND)];
}

const feed = (stream: unknown, payload: string | Buffer) =>
  stream instanceof Writable && stream.on('error', () => {}).end(payload); // errors: bwrap exited before reading it

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pid !== undefined) process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export class BwrapRuntime implements SandboxRuntime {
  readonly kind = 'bwrap' as const;
  private readonly running = new Map<string, ChildProcess>();
  private support: CgroupSupport | undefined;
  private readonly removals = new WeakMap<ChildProcess, Promise<void>>();
  private readonly seccomp = compileSeccompFilter();

  constructor(private readonly options: BwrapOptions) {}

  private cgroups(): CgroupSupport {
    if (this.support) return this.support;
    const { missing, reason } = (this.support = (this.options.cgroups ?? detectCgroupSupport)());
    if (missing.length)
      logger.warn({ missing, reason }, 'bwrap sandboxes run without some limits (see nanoclaw doctor)');
    return this.support;
  }

  private userFor(spec?: SandboxSpec): SandboxUser {
    return spec?.user ?? this.options.user ?? sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID });
  }

  async ensureRunning(): Promise<void> {
    if ((await runCommand('bwrap', ['--version'], 10_000)).missing)
      throw new RuntimeUnavailableError(
        'bubblewrap is not installed',
        'Install it (apt-get install bubblewrap) or install Docker (apt-get install docker.io)',
      );
    // A real start proves namespaces, seccomp and cgroups work and the sandbox user reaches our files.
    const mounts = (this.options.requiredPaths ?? [])
      .filter((p) => fs.existsSync(p))
      .map((p, i) => ({ hostPath: p, containerPath: `/probe/${i}`, readonly: true }));
    const name = `nanoclaw-probe-${process.pid}-${Date.now()}`;
    const child = this.spawn({
      name,
      image: 'probe',
      mounts,
      env: {},
      workdir: '/',
      labels: {},
      command: ['true'],
    });
    let stderr = '';
    child.stdout?.resume();
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), 15_000);
    const code = await once(child, 'close').then(
      ([c]) => c as number | null,
      (err: Error) => ((stderr = err.message), null),
    );
    clearTimeout(timer);
    await this.removals.get(child); // so `nanoclaw doctor` leaves no cgroup behind
    if (code === 0) return;
    const reason = stderr.trim().split('\n')[0] || `exit code ${code}`;
    const hint = /permission denied|can't find source path/i.test(reason)
      ? `Make the project and NANOCLAW_HOME reachable by uid ${this.userFor().uid} (keep them outside /root, or chmod o+x their parents)`
      : /unknown option|disable-userns/i.test(reason)
        ? 'Install bubblewrap 0.8 or newer, not setuid, or use Docker'
        : 'Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ also kernel.apparmor_restrict_unprivileged_userns=0), or use Docker';
    throw new RuntimeUnavailableError(`bubblewrap cannot start a sandbox (${reason})`, hint);
  }

  async imageExists(_image: string): Promise<boolean> {
    return fs.existsSync(path.join(this.options.agentRunnerDir, 'dist', 'index.js'));
  }

  /** bwrap reads its options from fd 3 (--args) first, so it waits there while it is moved into the cgroup. */
  spawn(spec: SandboxSpec): ChildProcess {
    const user = this.userFor(spec);
    const { passwd, group } = sandboxAccountFiles(user);
    const piped = [passwd, group, '127.0.0.1 localhost\n::1 localhost\n', this.seccomp];
    const args = bwrapArgs(spec, { agentRunnerDir: this.options.agentRunnerDir, user, piped: true });
    const split = args.length - (spec.command ?? AGENT_COMMAND).length - 1; // the '--' (an env value may be one too)
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
        cgroup = SandboxCgroup.create(this.cgroups(), spec.name, this.options.limits ?? DEFAULT_LIMITS);
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
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    signalGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      logger.warn({ name }, 'sandbox ignored SIGTERM; killing it');
      signalGroup(child.pid, 'SIGKILL');
    }, this.options.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Sandboxes die with the host; only their empty cgroups may remain. */
  async cleanupOrphans(_instanceId: string): Promise<string[]> {
    const removed = removeStaleCgroups(this.cgroups());
    if (removed) logger.info({ removed }, 'removed stale sandbox cgroups');
    return [];
  }
}
