import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { isStale } from '../test/helpers/build-freshness.js';

const ROOT = path.resolve(import.meta.dirname, '..');

function step(command: string, args: string[]): void {
  // Build output goes to stderr: stdout carries only the results table.
  const result = spawnSync(command, args, { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status})`);
}

/**
 * Measures what would run: the compiled host (the idle-RSS child runs dist/, as `npm start` does),
 * the host build of the agent-runner (bwrap) and the agent image (docker; cached layers make an
 * unchanged build take seconds).
 */
export function prepareBuilds(runtimes: string[]): void {
  if (isStale(path.join(ROOT, 'dist/cli/main.js'), path.join(ROOT, 'src'))) step('npm', ['run', 'build']);
  const runner = path.join(ROOT, 'container/agent-runner');
  const runnerSources = [path.join(runner, 'src'), path.join(ROOT, 'src/contract')];
  if (runtimes.includes('bwrap') && isStale(path.join(runner, 'dist/index.js'), ...runnerSources))
    step('bash', ['container/build-runner.sh']);
  if (runtimes.includes('docker')) step('bash', ['container/build.sh']);
}
