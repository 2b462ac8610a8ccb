import { spawn, type ChildProcess } from 'node:child_process';
import { z } from 'zod';
import { logger } from '../../logger.js';
import {
  INSTANCE_LABEL,
  isWithin,
  RuntimeUnavailableError,
  sortMountsForApply,
  type MountSpec,
  type SandboxRuntime,
  type SandboxSpec,
} from '../runtime.js';
import { cliEnv, runCommand } from './cli.js';

const listSchema = z.array(
  z.object({
    configuration: z.object({ id: z.string(), labels: z.record(z.string(), z.string()).optional() }),
  }),
);

/** Apple's `container` CLI, a VM per sandbox (untested on CI); its gaps are in SECURITY.md. */
export class AppleContainerRuntime implements SandboxRuntime {
  readonly kind = 'apple' as const;
  private warned = false;

  async ensureRunning(): Promise<void> {
    const { missing, code } = await runCommand('container', ['system', 'status']);
    if (missing)
      throw new RuntimeUnavailableError(
        'Apple container is not installed',
        'Install it from https://github.com/apple/container/releases (macOS 26+, Apple silicon), or install Docker Desktop',
      );
    if (code !== 0)
      throw new RuntimeUnavailableError(
        'Apple container services are not running',
        'Run `container system start`',
      );
    if (!this.warned)
      logger.warn('apple container sandboxes have a network interface; egress is not blocked');
    this.warned = true;
  }

  async imageExists(image: string): Promise<boolean> {
    return (await runCommand('container', ['image', 'inspect', image])).code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const args = ['run', '-i', '--rm', '--name', spec.name];
    for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
    if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`);
    args.push('--memory', '2G', '--tmpfs', '/tmp', '-w', spec.workdir);
    for (const [key, value] of Object.entries(spec.env)) args.push('-e', `${key}=${value}`);
    for (const { mask, hostPath, containerPath: to, readonly } of directoryShareableMounts(spec.mounts))
      if (mask === 'dir') args.push('--tmpfs', to);
      else args.push('--mount', `type=bind,source=${hostPath},target=${to}${readonly ? ',readonly' : ''}`);
    args.push(spec.image, ...(spec.command ?? []));
    return spawn('container', args, { stdio: ['pipe', 'pipe', 'pipe'], env: cliEnv() });
  }

  async stop(name: string): Promise<void> {
    await runCommand('container', ['stop', '--time', '10', name], 25_000);
    await runCommand('container', ['delete', '--force', name]);
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const listed = await runCommand('container', ['list', '--all', '--format', 'json']);
    let json: unknown = null;
    try {
      json = JSON.parse(listed.stdout);
    } catch {
      // reported below
    }
    const parsed = listSchema.safeParse(json);
    if (listed.code !== 0 || !parsed.success) {
      logger.warn({ stderr: listed.stderr.trim() }, 'could not list orphaned sandboxes');
      return [];
    }
    const names = parsed.data.flatMap(({ configuration: c }) =>
      c.labels?.[INSTANCE_LABEL] === instanceId ? [c.id] : [],
    );
    await Promise.all(names.map((name) => this.stop(name)));
    return names;
  }
}

/** Directory shares only: a file mask goes, with the mount it would hide a file in (fail closed). */
function directoryShareableMounts(mounts: MountSpec[]): MountSpec[] {
  const unmaskable = mounts.filter((m) => m.mask === 'file').map((m) => m.containerPath);
  const kept = mounts.filter((m) => {
    if (m.mask === 'file') return false;
    if (!unmaskable.some((file) => isWithin(file, m.containerPath))) return true;
    logger.warn({ containerPath: m.containerPath }, 'mount left out: it holds a file to hide');
    return false;
  });
  // A dir mask whose parent was dropped has nothing left to hide.
  const parents = kept.filter((m) => !m.mask).map((m) => m.containerPath);
  return sortMountsForApply(kept.filter((m) => !m.mask || parents.some((p) => isWithin(m.containerPath, p))));
}
