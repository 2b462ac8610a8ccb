import path from 'node:path';
import type { Config, RuntimeKind } from '../config.js';
import { RuntimeUnavailableError, sandboxUser, type SandboxRuntime } from './runtime.js';
import { AppleContainerRuntime } from './runtimes/apple.js';
import { BwrapRuntime } from './runtimes/bwrap.js';
import { DockerRuntime } from './runtimes/docker.js';

export function buildRuntime(kind: RuntimeKind, config: Config): SandboxRuntime {
  if (kind === 'apple') return new AppleContainerRuntime();
  const accountsDir = path.join(config.dataDir, 'sandbox-accounts');
  if (kind !== 'bwrap') return new DockerRuntime({ accountsDir }, kind);
  return new BwrapRuntime({
    agentRunnerDir: path.join(config.projectRoot, 'container', 'agent-runner'),
    requiredPaths: [config.projectRoot, config.home],
    user: sandboxUser(config),
  });
}

const ORDER: Record<string, RuntimeKind[]> = {
  darwin: ['apple', 'docker'],
  linux: ['docker', 'podman', 'bwrap'],
};
export const detectionOrder = (platform: NodeJS.Platform): RuntimeKind[] => ORDER[platform] ?? ['docker'];

export async function createRuntime(config: Config, platform = process.platform): Promise<SandboxRuntime> {
  if (config.containerRuntime) return buildRuntime(config.containerRuntime, config);
  const reasons: string[] = [];
  for (const kind of detectionOrder(platform)) {
    const runtime = buildRuntime(kind, config);
    try {
      await runtime.ensureRunning();
      return runtime;
    } catch (err) {
      reasons.push(`${kind}: ${(err as Error).message}`);
    }
  }
  const advice =
    platform === 'darwin'
      ? 'Install Apple container (https://github.com/apple/container/releases) or Docker Desktop'
      : 'Install docker.io, podman or bubblewrap';
  throw new RuntimeUnavailableError(`No usable sandbox runtime (${reasons.join('; ')})`, advice);
}
