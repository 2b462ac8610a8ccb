import path from 'node:path';
import type { Config, RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { RuntimeUnavailableError, sandboxUser, type SandboxRuntime } from './runtime.js';
import { AppleContainerRuntime } from './runtimes/apple.js';
import { BwrapRuntime } from './runtimes/bwrap.js';
import { DockerRuntime } from './runtimes/docker.js';
import { PodmanRuntime } from './runtimes/podman.js';

/** Where the bwrap driver finds the host build of the agent-runner. */
export function agentRunnerDir(config: Config): string {
  return path.join(config.projectRoot, 'container', 'agent-runner');
}

export function buildRuntime(kind: RuntimeKind, config: Config): SandboxRuntime {
  // The sandbox user's passwd/group files live with the rest of the host's state.
  const accountsDir = path.join(config.dataDir, 'sandbox-accounts');
  switch (kind) {
    case 'docker':
      return new DockerRuntime({ accountsDir });
    case 'podman':
      return new PodmanRuntime({ accountsDir });
    case 'apple':
      return new AppleContainerRuntime();
    case 'bwrap':
      return new BwrapRuntime({
        agentRunnerDir: agentRunnerDir(config),
        requiredPaths: [config.projectRoot, config.home],
        user: sandboxUser(config),
      });
  }
}

export function detectionOrder(platform: NodeJS.Platform): RuntimeKind[] {
  if (platform === 'darwin') return ['apple', 'docker'];
  if (platform === 'linux') return ['docker', 'podman', 'bwrap'];
  return ['docker'];
}

function installAdvice(platform: NodeJS.Platform): string {
  if (platform === 'darwin')
    return 'Install Apple container (https://github.com/apple/container/releases) or Docker Desktop';
  if (platform === 'linux') return 'Install one: apt-get install docker.io (or podman, or bubblewrap)';
  return 'Install Docker';
}

/**
 * The configured runtime (CONTAINER_RUNTIME) as is — the caller's ensureRunning() reports what is
 * wrong with it — or else the first runtime in detection order that can actually start.
 */
export async function createRuntime(
  config: Config,
  platform: NodeJS.Platform = process.platform,
): Promise<SandboxRuntime> {
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
  throw new RuntimeUnavailableError(
    `No usable sandbox runtime (${reasons.join('; ')})`,
    installAdvice(platform),
  );
}
