import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../logger.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import {
  cliEnv,
  hostIsRoot,
  INSTANCE_LABEL,
  keyValues,
  type MountSpec,
  runCommand,
  RuntimeUnavailableError,
  SANDBOX_HOME,
  sandboxAccountFiles,
  type SandboxRuntime,
  type SandboxSpec,
  sortMountsForApply,
} from '../runtime.js';
import { ociSeccompProfile } from './seccomp.js';

function mountArgs({ hostPath, containerPath: to, readonly, mask }: MountSpec, kind: string): string[] {
  for (const p of mask ? [to] : [hostPath, to])
    if (/[:,\n]/.test(p)) throw new Error(`mount path contains ':', ',' or a newline: ${JSON.stringify(p)}`);
  // Podman would copy what the tmpfs covers into it.
  if (mask === 'dir')
    return ['--mount', `type=tmpfs,destination=${to},ro${kind === 'podman' ? ',notmpcopyup' : ''}`];
  return ['-v', `${mask ? '/dev/null' : hostPath}:${to}${mask || readonly ? ':ro' : ''}`];
}

export function dockerRunArgs(spec: SandboxSpec, extraRunArgs: string[] = [], kind = 'docker'): string[] {
  const { user } = spec;
  const args = ['run', '-i', '--rm', '--pull', 'never', '--network', 'none', '--name', spec.name];
  args.push(...keyValues('--label', spec.labels), ...keyValues('-e', spec.env));
  if (user) args.push('--user', `${user.uid}:${user.gid}`);
  args.push('--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--read-only');
  const owner = user ? `,uid=${user.uid},gid=${user.gid}` : '';
  // Podman refuses uid= on --tmpfs; its --mount chowns.
  const home =
    kind === 'podman'
      ? ['--mount', `type=tmpfs,destination=${SANDBOX_HOME},tmpfs-mode=0755,chown=true,exec,nosuid,nodev`]
      : ['--tmpfs', `${SANDBOX_HOME}:rw,exec,nosuid,nodev,mode=0755${owner}`];
  args.push('--tmpfs', '/tmp:rw,exec,nosuid,nodev,mode=1777', ...home);
  args.push('--pids-limit', '512', '--memory', '2g', '--init', ...extraRunArgs, '-w', spec.workdir);
  for (const mount of sortMountsForApply(spec.mounts)) args.push(...mountArgs(mount, kind));
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
    if (missing)
      throw new RuntimeUnavailableError(
        `${this.kind} is not installed`,
        `apt-get install ${this.kind === 'docker' ? 'docker.io' : 'podman'}`,
      );
    const reason = stderr.trim().split('\n')[0] || `exit code ${code}`;
    if (code)
      throw new RuntimeUnavailableError(`${this.kind} is not running (${reason})`, `Start ${this.kind}`);
  }

  async imageExists(image: string): Promise<boolean> {
    return (await runCommand(this.kind, ['image', 'inspect', image])).code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const dir = this.options.accountsDir ?? path.join(os.homedir(), '.cache', 'nanoclaw', 'sandbox-accounts');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = (name: string, text: string) => {
      const hostPath = path.join(dir, name);
      writeFileAtomic(hostPath, text);
      fs.chmodSync(hostPath, 0o644);
      return hostPath;
    };
    const { user } = spec;
    const mounts = Object.entries(user ? sandboxAccountFiles(user) : {}).map(([name, text]) => ({
      hostPath: file(`${name}-${user?.uid}-${user?.gid}`, text),
      containerPath: `/etc/${name}`,
      readonly: true,
    }));
    // Podman passes on the host's low nofile limit; its own seccomp profile allows user namespaces.
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
    await runCommand(this.kind, ['rm', '-f', name]);
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const args = ['ps', '-a', '--filter', `label=${INSTANCE_LABEL}=${instanceId}`, '--format', '{{.Names}}'];
    const names = (await runCommand(this.kind, args)).stdout.split('\n').filter(Boolean);
    await Promise.all(names.map((name) => this.stop(name)));
    if (names.length) logger.info({ names }, 'stopped orphaned sandboxes');
    return names;
  }
}
