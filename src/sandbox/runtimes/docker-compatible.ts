import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RuntimeKind } from '../../config.js';
import { logger } from '../../logger.js';
import {
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

export interface DockerCompatibleOptions {
  /** Memory cap per sandbox, in the CLI's syntax. The agent plus a headless browser fit in 2 GiB. */
  memory?: string;
  /** Process cap per sandbox: stops fork bombs, leaves room for the SDK, its tools and a browser. */
  pidsLimit?: number;
  /** Seconds between the graceful stop signal and the kill. */
  stopGraceSeconds?: number;
  /**
   * Host directory for the generated passwd and group files bound over the image's. The host keeps
   * them: the sandbox can read, never edit them. Default: ~/.cache/nanoclaw/sandbox-accounts (the
   * daemon binds them, so it needs no access for the sandbox user, only the files' own 0644).
   */
  accountsDir?: string;
}

/** How a particular CLI differs from docker's: its binary, install hints and extra run flags. */
export interface CliFlavour {
  kind: RuntimeKind;
  bin: string;
  installHint: string;
  startHint: string;
  extraRunArgs: () => string[];
}

/** `-v` uses ':' as its separator, so a path containing one cannot be expressed safely. */
function assertPlainPath(p: string): void {
  if (p.includes(':') || p.includes(',') || p.includes('\n'))
    throw new Error(`mount path contains ':', ',' or a newline: ${JSON.stringify(p)}`);
}

function mountArgs(mount: MountSpec): string[] {
  assertPlainPath(mount.containerPath);
  // `ro`, not `readonly`: podman accepts only the short form.
  if (mount.mask === 'dir') return ['--mount', `type=tmpfs,destination=${mount.containerPath},ro`];
  if (mount.mask === 'file') return ['-v', `/dev/null:${mount.containerPath}:ro`];
  assertPlainPath(mount.hostPath);
  return ['-v', `${mount.hostPath}:${mount.containerPath}${mount.readonly ? ':ro' : ''}`];
}

/** The full `run` argument list for docker-CLI-compatible runtimes (SPEC §5.8 hardening). */
export function dockerRunArgs(
  spec: SandboxSpec,
  options: DockerCompatibleOptions,
  extraRunArgs: string[] = [],
): string[] {
  const args = ['run', '-i', '--rm', '--pull', 'never', '--network', 'none', '--name', spec.name];
  for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
  if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`);
  const owner = spec.user ? `,uid=${spec.user.uid},gid=${spec.user.gid}` : '';
  args.push(
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--read-only',
    // Agents compile and run code in /tmp, so it stays exec; nosuid/nodev still apply.
    '--tmpfs',
    '/tmp:rw,exec,nosuid,nodev,mode=1777',
    // The SDK writes ~/.claude.json; HOME must be writable although the root fs is not.
    '--tmpfs',
    `${SANDBOX_HOME}:rw,exec,nosuid,nodev,mode=0755${owner}`,
    '--pids-limit',
    String(options.pidsLimit ?? 512),
    '--memory',
    options.memory ?? '2g',
    '--init',
    ...extraRunArgs,
    '-w',
    spec.workdir,
  );
  for (const [key, value] of Object.entries(spec.env)) args.push('-e', `${key}=${value}`);
  for (const mount of sortMountsForApply(spec.mounts)) args.push(...mountArgs(mount));
  // A command replaces the image's entrypoint, not only its arguments.
  const [entrypoint, ...rest] = spec.command ?? [];
  if (entrypoint) args.push('--entrypoint', entrypoint, spec.image, ...rest);
  else args.push(spec.image);
  return args;
}

/** Shared driver for docker and podman: both speak the same CLI. */
export class DockerCompatibleRuntime implements SandboxRuntime {
  readonly kind: RuntimeKind;

  constructor(
    private readonly flavour: CliFlavour,
    private readonly options: DockerCompatibleOptions = {},
  ) {
    this.kind = flavour.kind;
  }

  async ensureRunning(): Promise<void> {
    const { bin } = this.flavour;
    const result = await runCommand(bin, ['info', '--format', 'json'], { timeoutMs: 15_000 });
    if (result.startError?.code === 'ENOENT')
      throw new RuntimeUnavailableError(`${bin} is not installed`, this.flavour.installHint);
    if (result.code !== 0) {
      const reason = (result.stderr.trim().split('\n')[0] ?? '') || `exit code ${result.code}`;
      throw new RuntimeUnavailableError(`${bin} is not running (${reason})`, this.flavour.startHint);
    }
  }

  async imageExists(image: string): Promise<boolean> {
    const result = await runCommand(this.flavour.bin, ['image', 'inspect', image], {
      timeoutMs: 15_000,
    });
    return result.code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const mounts = spec.user ? [...spec.mounts, ...this.accountMounts(spec.user)] : spec.mounts;
    const args = dockerRunArgs({ ...spec, mounts }, this.options, this.flavour.extraRunArgs());
    return spawn(this.flavour.bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: cliEnv() });
  }

  /**
   * The image knows uid 1000 only; the sandbox uid (61000 by default for a root host) needs an
   * account too, or os.userInfo(), the shell and git fail. Written once per uid, atomically, so a
   * sandbox starting meanwhile never binds a half-written file.
   */
  private accountMounts(user: SandboxUser): MountSpec[] {
    const dir = this.options.accountsDir ?? path.join(os.homedir(), '.cache', 'nanoclaw', 'sandbox-accounts');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files = sandboxAccountFiles(user);
    return (['passwd', 'group'] as const).map((name) => {
      const hostPath = path.join(dir, `${name}-${user.uid}-${user.gid}`);
      if (readOrNull(hostPath) !== files[name]) {
        const tmp = `${hostPath}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, files[name]);
        fs.chmodSync(tmp, 0o644); // whatever the umask: the sandbox user reads it
        fs.renameSync(tmp, hostPath);
      }
      return { hostPath, containerPath: `/etc/${name}`, readonly: true };
    });
  }

  async stop(name: string): Promise<void> {
    const grace = this.options.stopGraceSeconds ?? 10;
    const stopped = await runCommand(this.flavour.bin, ['stop', '-t', String(grace), name], {
      timeoutMs: (grace + 15) * 1000,
    });
    // --rm removes it once stopped; the forced remove covers a stop that failed or hung.
    const removed = await runCommand(this.flavour.bin, ['rm', '-f', name], { timeoutMs: 15_000 });
    if (stopped.code !== 0 && removed.code !== 0)
      logger.debug({ name, stderr: removed.stderr.trim() }, 'sandbox already gone');
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const listed = await runCommand(
      this.flavour.bin,
      ['ps', '-a', '--filter', `label=${INSTANCE_LABEL}=${instanceId}`, '--format', '{{.Names}}'],
      { timeoutMs: 15_000 },
    );
    if (listed.code !== 0) {
      logger.warn({ stderr: listed.stderr.trim() }, 'could not list orphaned sandboxes');
      return [];
    }
    const names = listed.stdout
      .split('\n')
      .map((n) => n.trim())
      .filter(Boolean);
    await Promise.all(names.map((name) => this.stop(name)));
    if (names.length > 0) logger.info({ names }, 'stopped orphaned sandboxes');
    return names;
  }
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
