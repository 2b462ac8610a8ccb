import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { createRuntime } from '../sandbox/detect.js';

export async function runBuild(
  ifMissing: boolean,
  { config, out, err }: { config: Config; out: Writable; err: Writable },
) {
  const image = config.containerImage;
  const runtime = await createRuntime(config).catch((e: Error) => void err.write(`${e.message}\n`));
  if (!runtime) return ifMissing ? 0 : 1;
  if (runtime.kind !== 'bwrap') await runtime.ensureRunning();
  if (ifMissing && (await runtime.imageExists(image))) return 0;
  const bwrap = runtime.kind === 'bwrap';
  out.write(`Building ${bwrap ? 'the agent-runner' : `the agent image ${image}`} with ${runtime.kind}...\n`);
  const [script, ...args] = bwrap ? ['build-runner.sh'] : ['build.sh', '--runtime', runtime.kind];
  return (
    spawnSync('bash', [path.join(config.projectRoot, 'container', script!), ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CONTAINER_IMAGE: image },
    }).status ?? 1
  );
}
