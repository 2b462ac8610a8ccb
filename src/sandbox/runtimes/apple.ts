import { spawn, type ChildProcess } from 'node:child_process';
import { logger } from '../../logger.js';
import { INSTANCE_LABEL, isWithin, RuntimeUnavailableError, sortMountsForApply } from '../runtime.js';
import type { MountSpec, SandboxRuntime, SandboxSpec } from '../runtime.js';
import { cliEnv, runCommand } from './cli.js';

/** Apple's `container` CLI, a VM per sandbox (untested on CI); its gaps are in SECURITY.md. */
export class AppleContainerRuntime implements SandboxRuntime {
  readonly kind = 'apple' as const;

  async ensureRunning(): Promise<void> {
    const { missing, code } = await runCommand('container', ['system', 'status']);
    if (missing)
      throw new RuntimeUnavailableError(
        'Apple container is not installed',
        'Install it from https://github.com/apple/container/releases (macOS 26+, Apple silicon), or install Docker Desktop',
      );
    if (code)
      throw new RuntimeUnavailableError(
        'Apple container services are not running',
        'Run `container system start`',
      );
  }

  async imageExists(image: string): Promise<boolean> {
    return (await runCommand('container', ['image', 'inspect', image])).code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    logger.warn(
      { name: spec.name },
      'apple container sandboxes have a network interface; egress is not blocked',
    );
    const args = [
      'run',
      '-i',
      '--rm',
      '--name',
      spec.name,
      '--memory',
      '2G',
      '--tmpfs',
      '/tmp',
      '-w',
      spec.workdir,
    ];
    for (const [key, value] of Object.entries(spec.labels)) args.push('--label', `${key}=${value}`);
    if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`);
    for (const [key, value] of Object.entries(spec.env)) args.push('-e', `${key}=${value}`);
    for (const { mask, hostPath, containerPath: to, readonly } of directoryShares(spec.mounts))
      args.push(
        ...(mask
          ? ['--tmpfs', to]
          : ['--mount', `type=bind,source=${hostPath},target=${to}${readonly ? ',readonly' : ''}`]),
      );
    return spawn('container', [...args, spec.image, ...(spec.command ?? [])], {
      stdio: 'pipe',
      env: cliEnv(),
    });
  }

  async stop(name: string): Promise<void> {
    await runCommand('container', ['stop', '--time', '10', name], 25_000);
    await runCommand('container', ['delete', '--force', name]);
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const { stdout } = await runCommand('container', ['list', '--all', '--format', 'json']);
    let names: string[];
    try {
      type Listed = { configuration: { id: string; labels?: Record<string, string> } };
      names = (JSON.parse(stdout) as Listed[]).flatMap(({ configuration: c }) =>
        c.labels?.[INSTANCE_LABEL] === instanceId ? [c.id] : [],
      );
    } catch {
      logger.warn('could not list orphaned sandboxes');
      return [];
    }
    await Promise.all(names.map((name) => this.stop(name)));
    return names;
  }
}

/** A single file cannot be hidden: the mount that holds it goes too (fail closed), and masks left without a parent. */
function directoryShares(mounts: MountSpec[]): MountSpec[] {
  const files = mounts.filter((m) => m.mask === 'file').map((m) => m.containerPath);
  const kept = mounts.filter((m) => m.mask !== 'file' && !files.some((f) => isWithin(f, m.containerPath)));
  const parents = kept.filter((m) => !m.mask).map((m) => m.containerPath);
  return sortMountsForApply(kept.filter((m) => !m.mask || parents.some((p) => isWithin(m.containerPath, p))));
}
