import { spawn, type ChildProcess } from 'node:child_process';
import { z } from 'zod';
import { logger } from '../../logger.js';
import {
  INSTANCE_LABEL,
  RuntimeUnavailableError,
  sortMountsForApply,
  type MountSpec,
  type SandboxRuntime,
  type SandboxSpec,
} from '../runtime.js';
import { cliEnv, runCommand } from './cli.js';

/**
 * macOS `container` CLI (Apple Container): each sandbox is a small VM. Untested on CI (Linux).
 *
 * What it cannot do, said plainly:
 * - No flag for "no network": the VM gets the default vmnet network, so egress is not blocked at the
 *   network layer (the model proxy still holds the keys). A warning is logged at start.
 * - No read-only root, capability or pids flags; isolation comes from the VM boundary.
 * - Mounts are directory shares: a single file (main's project .env) cannot be hidden. A mount that
 *   needs a file mask is therefore left out entirely rather than exposed.
 */
export class AppleContainerRuntime implements SandboxRuntime {
  readonly kind = 'apple' as const;
  private warned = false;

  constructor(private readonly options: { memory?: string; stopGraceSeconds?: number } = {}) {}

  async ensureRunning(): Promise<void> {
    const result = await runCommand('container', ['system', 'status'], { timeoutMs: 15_000 });
    if (result.startError?.code === 'ENOENT')
      throw new RuntimeUnavailableError(
        'Apple container is not installed',
        'Install it from https://github.com/apple/container/releases (macOS 26+, Apple silicon), or install Docker Desktop',
      );
    if (result.code !== 0)
      throw new RuntimeUnavailableError(
        'Apple container services are not running',
        'Run `container system start`',
      );
    if (!this.warned) {
      this.warned = true;
      logger.warn('apple container sandboxes have a network interface; egress is not blocked');
    }
  }

  async imageExists(image: string): Promise<boolean> {
    const result = await runCommand('container', ['image', 'inspect', image], {
      timeoutMs: 15_000,
    });
    return result.code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const args = ['run', '-i', '--rm', '--name', spec.name];
    for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
    if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`);
    args.push('--memory', this.options.memory ?? '2G', '--tmpfs', '/tmp', '-w', spec.workdir);
    for (const [key, value] of Object.entries(spec.env)) args.push('-e', `${key}=${value}`);
    for (const mount of directoryShareableMounts(spec.mounts)) {
      if (mount.mask === 'dir') args.push('--tmpfs', mount.containerPath);
      else
        args.push(
          '--mount',
          `type=bind,source=${mount.hostPath},target=${mount.containerPath}${mount.readonly ? ',readonly' : ''}`,
        );
    }
    args.push(spec.image, ...(spec.command ?? []));
    return spawn('container', args, { stdio: ['pipe', 'pipe', 'pipe'], env: cliEnv() });
  }

  async stop(name: string): Promise<void> {
    const grace = this.options.stopGraceSeconds ?? 10;
    await runCommand('container', ['stop', '--time', String(grace), name], {
      timeoutMs: (grace + 15) * 1000,
    });
    await runCommand('container', ['delete', '--force', name], { timeoutMs: 15_000 });
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const listed = await runCommand('container', ['list', '--all', '--format', 'json'], {
      timeoutMs: 15_000,
    });
    const parsed = listSchema.safeParse(safeJson(listed.stdout));
    if (listed.code !== 0 || !parsed.success) {
      logger.warn({ stderr: listed.stderr.trim() }, 'could not list orphaned sandboxes');
      return [];
    }
    const names = parsed.data
      .filter((c) => c.configuration.labels?.[INSTANCE_LABEL] === instanceId)
      .map((c) => c.configuration.id);
    await Promise.all(names.map((name) => this.stop(name)));
    return names;
  }
}

const listSchema = z.array(
  z.object({
    configuration: z.object({ id: z.string(), labels: z.record(z.string(), z.string()).optional() }),
  }),
);

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Drops file masks together with the mount they would hide a file in (fail closed). */
function directoryShareableMounts(mounts: MountSpec[]): MountSpec[] {
  const unmaskable = mounts.filter((m) => m.mask === 'file').map((m) => m.containerPath);
  const isUnder = (child: string, parent: string) =>
    child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
  const kept = mounts.filter((m) => {
    if (m.mask === 'file') return false;
    const hidesNothingItCannot = !unmaskable.some((file) => isUnder(file, m.containerPath));
    if (!hidesNothingItCannot)
      logger.warn({ containerPath: m.containerPath }, 'mount left out: it holds a file to hide');
    return hidesNothingItCannot;
  });
  // A dir mask whose parent was dropped has nothing left to hide.
  const parents = kept.filter((m) => !m.mask).map((m) => m.containerPath);
  return sortMountsForApply(kept.filter((m) => !m.mask || parents.some((p) => isUnder(m.containerPath, p))));
}
