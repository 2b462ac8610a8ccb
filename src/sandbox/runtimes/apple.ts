import { spawn, type ChildProcess } from 'node:child_process';
import {
  cliEnv,
  INSTANCE_LABEL,
  isWithin,
  keyValues,
  runCommand,
  RuntimeUnavailableError,
  type SandboxRuntime,
  type SandboxSpec,
  sortMountsForApply,
} from '../runtime.js';

/** Untested on CI; its gaps (network egress) are in SECURITY.md. */
export class AppleContainerRuntime implements SandboxRuntime {
  readonly kind = 'apple' as const;

  async ensureRunning(): Promise<void> {
    const { missing, code } = await runCommand('container', ['system', 'status']);
    if (missing)
      throw new RuntimeUnavailableError(
        'Apple container is not installed',
        'Install it from https://github.com/apple/container/releases or Docker Desktop',
      );
    if (code)
      throw new RuntimeUnavailableError('Apple container is not running', 'Run `container system start`');
  }

  async imageExists(image: string): Promise<boolean> {
    return (await runCommand('container', ['image', 'inspect', image])).code === 0;
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const args = ['run', '-i', '--rm', '--name', spec.name, '--memory', '2G', '--tmpfs', '/tmp'];
    args.push('-w', spec.workdir, ...keyValues('--label', spec.labels), ...keyValues('-e', spec.env));
    if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`);
    // A file cannot be hidden: the mount that holds it is left out (fail closed).
    const files = spec.mounts.filter((m) => m.mask === 'file').map((m) => m.containerPath);
    for (const { mask, hostPath, containerPath: to, readonly } of sortMountsForApply(spec.mounts))
      if (mask === 'dir') args.push('--tmpfs', to);
      else if (!mask && !files.some((f) => isWithin(f, to)))
        args.push('--mount', `type=bind,source=${hostPath},target=${to}${readonly ? ',readonly' : ''}`);
    args.push(spec.image, ...(spec.command ?? []));
    return spawn('container', args, { stdio: 'pipe', env: cliEnv() });
  }

  async stop(name: string): Promise<void> {
    await runCommand('container', ['stop', '--time', '10', name], 25_000);
    await runCommand('container', ['delete', '--force', name]);
  }

  async cleanupOrphans(instanceId: string): Promise<string[]> {
    const { stdout } = await runCommand('container', ['list', '--all', '--format', 'json']);
    const names = (JSON.parse(stdout) as { configuration: { id: string; labels?: Record<string, string> } }[])
      .filter(({ configuration: c }) => c.labels?.[INSTANCE_LABEL] === instanceId)
      .map(({ configuration: c }) => c.id);
    await Promise.all(names.map((name) => this.stop(name)));
    return names;
  }
}
