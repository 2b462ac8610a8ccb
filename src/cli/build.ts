import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { createRuntime } from '../sandbox/detect.js';

/**
 * `nanoclaw build [--if-missing]`: the agent image for docker/podman (building an offline base image
 * when no registry can supply node:22-slim), and the host build of the agent-runner that bwrap uses.
 */
export async function runBuild(args: string[], deps: { config: Config; out: Writable }): Promise<number> {
  const { config, out } = deps;
  const ifMissing = args.includes('--if-missing');
  let runtime;
  try {
    runtime = await createRuntime(config);
  } catch (err) {
    out.write(`${(err as Error).message}\n`);
    return ifMissing ? 0 : 1;
  }
  const containerDir = path.join(config.projectRoot, 'container');
  const runnerBuilt = fs.existsSync(path.join(containerDir, 'agent-runner', 'dist', 'index.js'));
  if (runtime.kind === 'bwrap') {
    if (ifMissing && runnerBuilt) return 0;
    out.write('Building the agent-runner for bwrap...\n');
    return script(path.join(containerDir, 'build-runner.sh'), [], config);
  }
  try {
    await runtime.ensureRunning();
  } catch (err) {
    out.write(`${(err as Error).message}\n`);
    return 1;
  }
  if (ifMissing && (await runtime.imageExists(config.containerImage))) return 0;
  out.write(
    `Building the agent image ${config.containerImage} with ${runtime.kind} (first time: a few minutes)...\n`,
  );
  return script(path.join(containerDir, 'build.sh'), ['--runtime', runtime.kind], config);
}

function script(file: string, args: string[], config: Config): number {
  const result = spawnSync('bash', [file, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CONTAINER_IMAGE: config.containerImage },
  });
  return result.status ?? 1;
}
