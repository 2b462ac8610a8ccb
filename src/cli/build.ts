import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { createRuntime } from '../sandbox/detect.js';

/**
 * `nanoclaw build [--if-missing]`: the agent image for docker/podman/apple (container/build.sh
 * makes an offline base image when no registry has node:22-slim), or the agent-runner for bwrap.
 */
export async function runBuild(
  args: string[],
  { config, out }: { config: Config; out: Writable },
): Promise<number> {
  const ifMissing = args.includes('--if-missing');
  const dir = path.join(config.projectRoot, 'container');
  const script = (file: string, scriptArgs: string[]) =>
    spawnSync('bash', [path.join(dir, file), ...scriptArgs], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CONTAINER_IMAGE: config.containerImage },
    }).status ?? 1;
  let runtime;
  try {
    runtime = await createRuntime(config);
  } catch (err) {
    out.write(`${(err as Error).message}\n`);
    return ifMissing ? 0 : 1;
  }
  if (runtime.kind === 'bwrap') {
    if (ifMissing && fs.existsSync(path.join(dir, 'agent-runner', 'dist', 'index.js'))) return 0;
    out.write('Building the agent-runner for bwrap...\n');
    return script('build-runner.sh', []);
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
  return script('build.sh', ['--runtime', runtime.kind]);
}
