import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../logger.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { hostIsRoot, INSTANCE_LABEL, RuntimeUnavailableError, SANDBOX_HOME } from '../runtime.js';
import { sandboxAccountFiles, sortMountsForApply, type MountSpec, type SandboxRuntime } from '../runtime.js';
import type { SandboxSpec } from '../runtime.js';
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

export function dockerRunArgs(spec: SandboxSpec, extraRunArgs: string[] = [], kind = 'docker'): string[] {
  const { user } = spec;
  const args = ['run', '-i', '--rm', '--pull', 'never', '--network', 'none', '--name', spec.name];
  for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
  if (user) args.push('--user', `${user.uid}:${user.gid}`);
  args.push('--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--read-only');
  // Agents build and run code in /tmp; HOME must be writable for the SDK's ~/.claude.json.
  args.push('--tmpfs', '/tmp:rw,exec,nosuid,nodev,mode=1777');
  // Podman refuses uid= on --tmpfs; its --mount chowns the tmpfs to the --user instead.
  const owner = user ? `,uid=${user.uid},gid=${user.gid}` : '';
  if (kind === 'podman')
    args.push(
      '--mount',
      `type=tmpfs,destination=${SANDBOX_HOME},tmpfs-mode=0755,chown=true,exec,nosuid,nodev`,
    );
  else args.push('--tmpfs', `${SANDBOX_HOME}:rw,exec,nosuid,nodev,mode=0755${owner}`);
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
    const dir = this.options.accountsDir ?? path.join(os.homedir(), '.cache', 'nanoclaw', 'sandbox-accounts');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = (name: string, text: string) => {
      const hostPath = path.join(dir, name);
      if (!fs.existsSync(hostPath) || fs.readFileSync(hostPath, 'utf8') !== text) {
        writeFileAtomic(hostPath, text);
        fs.chmodSync(hostPath, 0o644); // whatever the umask: the sandbox user reads it
      }
      return hostPath;
    };
    // The image knows uid 1000 only; without an account os.userInfo(), shells and git break.
    const { user } = spec;
    const accounts = user ? Object.entries(sandboxAccountFiles(user)) : [];
    const mounts = accounts.map(([name, text]) => ({
      hostPath: file(`${name}-${user?.uid}-${user?.gid}`, text),
      containerPath: `/etc/${name}`,
      readonly: true,
    }));
    // Podman passes on the host's nofile limit, too low for the SDK on some hosts; its default seccomp
    // profile allows user namespaces. Rootless, keep-id runs as the host user inside, who owns what it writes.
    const podman = () => [
      ...['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', '--security-opt'],
      `seccomp=${file('podman-seccomp.json', JSON.stringify(ociSeccompProfile()))}`,
      ...(hostIsRoot() ? [] : ['--userns', 'keep-id']),
    ];
    const extra = this.kind === 'podman' ? podman() : [];
    const args = dockerRunArgs({ ...spec, mounts: [...spec.mounts, ...mounts] }, extra, this.kind);
    return spawn(this.kind, args, { stdio: 'pipe', env: cliEnv() });
  }

  async stop(name: string): Promise<void> {
    const grace = this.options.stopGraceSeconds ?? 10;
    await runCommand(this.kind, ['stop', '-t', `${grace}`, name], (grace + 15) * 1000);
    await runCommand(this.kind, ['rm', '-f', name]); // --rm removes it once stopped; this covers a stop that failed
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
