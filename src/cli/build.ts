import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { createRuntime } from '../sandbox/detect.js';

/** The agent image for docker/podman/apple (build.sh makes an offline base when no registry answers), or the bwrap agent-runner. */
export async function runBuild(
  ifMissing: boolean,
  { config, out, err }: { config: Config; out: Writable; err: Writable },
) {
  const dir = path.join(config.projectRoot, 'container');
  const script = (file: string, ...args: string[]) =>
    spawnSync('bash', [path.join(dir, file), ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CONTAINER_IMAGE: config.containerImage },
    }).status ?? 1;
  let runtime;
  try {
    runtime = await createRuntime(config);
    if (runtime.kind === 'bwrap') {
      if (ifMissing && fs.existsSync(path.join(dir, 'agent-runner/dist/index.js'))) return 0;
      out.write('Building the agent-runner for bwrap...\n');
      return script('build-runner.sh');
    }
    await runtime.ensureRunning();
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return ifMissing && !runtime ? 0 : 1; // without a runtime, npm start reports it itself
  }
  if (ifMissing && (await runtime.imageExists(config.containerImage))) return 0;
  out.write(
    `Building the agent image ${config.containerImage} with ${runtime.kind} (first time: a few minutes)...\n`,
  );
  return script('build.sh', '--runtime', runtime.kind);
}
