import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../logger.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import {
  hostIsRoot,
  INSTANCE_LABEL,
  RuntimeUnavailableError,
  SANDBOX_HOME,
  sandboxAccountFiles,
  sortMountsForApply,
  type MountSpec,
  type SandboxRuntime,
  type SandboxSpec,
  type SandboxUser,
} from '../runtime.js';
import { cliEnv, runCommand } from './cli.js';
import { ociSeccompProfile } from './seccomp.js';

const HINTS = {
  docker: [
    'Install Docker (Debian/Ubuntu: apt-get install docker.io; macOS: Docker Desktop), or set CONTAINER_RUNTIME=bwrap',
    'Start the Docker daemon (systemctl start docker) and check you may use it',
  ],
  podman: [
    'Install Podman (apt-get install podman), or set CONTAINER_RUNTIME=bwrap',
    'Check that `podman info` works for this user',
  ],
} as const;

/** ':' separates the parts of -v, so a path with one cannot be expressed safely. */
function mountArgs({ hostPath, containerPath: to, readonly, mask }: MountSpec, kind: string): string[] {
  for (const p of mask ? [to] : [hostPath, to])
    if (/[:,\n]/.test(p)) throw new Error(`mount path contains ':', ',' or a newline: ${JSON.stringify(p)}`);
  // `ro`, not `readonly`: podman accepts only the short form. Podman copies what the tmpfs covers
  // into it unless told not to, which would defeat the mask.
  if (mask === 'dir')
    return ['--mount', `type=tmpfs,destination=${to},ro${kind === 'podman' ? ',notmpcopyup' : ''}`];
  return ['-v', `${mask ? '/dev/null' : hostPath}:${to}${mask || readonly ? ':ro' : ''}`];
}

/** The agent plus a browser fit in 2g and 512 processes; a fork bomb does not. */
export function dockerRunArgs(spec: SandboxSpec, extraRunArgs: string[] = [], kind = 'docker'): string[] {
  const { user } = spec;
  const args = ['run', '-i', '--rm', '--pull', 'never', '--network', 'none', '--name', spec.name];
  for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
  if (user) args.push('--user', `${user.uid}:${user.gid}`);
  args.push('--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--read-only');
  // Agents build and run code in /tmp; HOME must be writable for the SDK's ~/.claude.json.
  args.push('--tmpfs', '/tmp:rw,exec,nosuid,nodev,mode=1777');
  // Podman refuses uid= on --tmpfs; its --mount chowns the tmpfs to the --user instead.
  if (kind === 'podman')
    args.push(
      '--mount',
      `type=tmpfs,destination=${SANDBOX_HOME},tmpfs-mode=0755,chown=true,exec,nosuid,nodev`,
    );
  else {
    const owner = user ? `,uid=${user.uid},gid=${user.gid}` : '';
    args.push('--tmpfs', `${SANDBOX_HOME}:rw,exec,nosuid,nodev,mode=0755${owner}`);
  }
  args.push('--pids-limit', '512', '--memory', '2g', '--init', ...extraRunArgs, '-w', spec.workdir);
  for (const [key, value] of Object.entries(spec.env)) args.push('-e', `${key}=${value}`);
  for (const mount of sortMountsForApply(spec.mounts)) args.push(...mountArgs(mount, kind));
  // A command replaces the image's entrypoint, not only its arguments.
  const [entrypoint, ...rest] = spec.command ?? [];
  return [...args, ...(entrypoint ? ['--entrypoint', entrypoint, spec.image, ...rest] : [spec.image])];
}

export class DockerRuntime implements SandboxRuntime {
  constructor(
    private readonly options: { stopGraceSeconds?: number; accountsDir?: string } = {},
    readonly kind: 'docker' | 'podman' = 'docker',
  ) {}

  async ensureRunning(): Promise<void> {
    const { code, stderr, missing } = await runCommand(this.kind, ['info', '--format', 'json']);
    const [installHint, startHint] = HINTS[this.kind];
    if (missing) throw new RuntimeUnavailableError(`${this.kind} is not installed`, installHint);
    const reason = stderr.trim().split('\n')[0] || `exit code ${code}`;
    if (code !== 0) throw new RuntimeUnavailableError(`${this.kind} is not running (${reason})`, startHint);
  }

  async imageExists(image: string): Promise<boolean> {
    return (await runCommand(this.kind, ['image', 'inspect', image])).code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const mounts = spec.user ? [...spec.mounts, ...this.accountMounts(spec.user)] : spec.mounts;
    // Podman passes on the host's nofile limit, too low for the SDK on some hosts. Rootless, keep-id
    // runs as the host user inside (not root), so it owns what it writes.
    const podman = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];
    podman.push('--security-opt', `seccomp=${this.seccompProfile()}`);
    if (!hostIsRoot()) podman.push('--userns', 'keep-id');
    const args = dockerRunArgs({ ...spec, mounts }, this.kind === 'podman' ? podman : [], this.kind);
    return spawn(this.kind, args, { stdio: ['pipe', 'pipe', 'pipe'], env: cliEnv() });
  }

  /** The image knows uid 1000 only; without an account os.userInfo(), shells and git break. */
  private accountMounts(user: SandboxUser): MountSpec[] {
    const dir = this.accountsDir();
    const files = sandboxAccountFiles(user);
    return (['passwd', 'group'] as const).map((name) => {
      const hostPath = path.join(dir, `${name}-${user.uid}-${user.gid}`);
      if (!fs.existsSync(hostPath) || fs.readFileSync(hostPath, 'utf8') !== files[name]) {
        writeFileAtomic(hostPath, files[name]); // a sandbox starting meanwhile never binds half a file
        fs.chmodSync(hostPath, 0o644); // whatever the umask: the sandbox user reads it
      }
      return { hostPath, containerPath: `/etc/${name}`, readonly: true };
    });
  }

  private seccompProfile(): string {
    const file = path.join(this.accountsDir(), 'podman-seccomp.json');
    const profile = JSON.stringify(ociSeccompProfile());
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== profile) writeFileAtomic(file, profile);
    return file;
  }

  private accountsDir(): string {
    const dir = this.options.accountsDir ?? path.join(os.homedir(), '.cache', 'nanoclaw', 'sandbox-accounts');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async stop(name: string): Promise<void> {
    const grace = this.options.stopGraceSeconds ?? 10;
    const stopped = await runCommand(this.kind, ['stop', '-t', `${grace}`, name], (grace + 15) * 1000);
    // --rm removes it once stopped; this covers a stop that failed or hung.
    const removed = await runCommand(this.kind, ['rm', '-f', name]);
    if (stopped.code !== 0 && removed.code !== 0)
      logger.debug({ name, stderr: removed.stderr.trim() }, 'sandbox already gone');
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const filter = `label=${INSTANCE_LABEL}=${instanceId}`;
    const listed = await runCommand(this.kind, ['ps', '-a', '--filter', filter, '--format', '{{.Names}}']);
    if (listed.code !== 0) {
      logger.warn({ stderr: listed.stderr.trim() }, 'could not list orphaned sandboxes');
      return [];
    }
    const names = listed.stdout.split('\n').flatMap((n) => n.trim() || []);
    await Promise.all(names.map((name) => this.stop(name)));
    if (names.length) logger.info({ names }, 'stopped orphaned sandboxes');
    return names;
  }
}
