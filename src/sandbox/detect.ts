import path from 'node:path';
import type { Config, RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { RuntimeUnavailableError, sandboxUser, type SandboxRuntime } from './runtime.js';
import { AppleContainerRuntime } from './runtimes/apple.js';
import { BwrapRuntime } from './runtimes/bwrap.js';
import { DockerRuntime } from './runtimes/docker.js';

export function buildRuntime(kind: RuntimeKind, config: Config): SandboxRuntime {
  if (kind === 'apple') return new AppleContainerRuntime();
  if (kind !== 'bwrap')
    return new DockerRuntime({ accountsDir: path.join(config.dataDir, 'sandbox-accounts') }, kind);
  const agentRunnerDir = path.join(config.projectRoot, 'container', 'agent-runner');
  return new BwrapRuntime({
    agentRunnerDir,
    requiredPaths: [config.projectRoot, config.home],
    user: sandboxUser(config),
  });
}

export const detectionOrder = (platform: NodeJS.Platform): RuntimeKind[] =>
  platform === 'darwin'
    ? ['apple', 'docker']
    : platform === 'linux'
      ? ['docker', 'podman', 'bwrap']
      : ['docker'];

/** CONTAINER_RUNTIME as is (the caller's ensureRunning() says what is wrong), else the first that starts. */
export async function createRuntime(config: Config, platform = process.platform): Promise<SandboxRuntime> {
  if (config.containerRuntime) return buildRuntime(config.containerRuntime, config);
  const reasons: string[] = [];
  for (const kind of detectionOrder(platform)) {
    const runtime = buildRuntime(kind, config);
    try {
      await runtime.ensureRunning();
      logger.info({ runtime: kind }, 'sandbox runtime detected');
      return runtime;
    } catch (err) {
      reasons.push(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const advice = {
    darwin: 'Install Apple container (https://github.com/apple/container/releases) or Docker Desktop',
    linux: 'Install one: apt-get install docker.io (or podman, or bubblewrap)',
  }[platform as string];
  throw new RuntimeUnavailableError(
    `No usable sandbox runtime (${reasons.join('; ')})`,
    advice ?? 'Install Docker',
  );
}
