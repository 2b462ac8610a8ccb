import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BwrapRuntime } from '../../src/sandbox/runtimes/bwrap.js';
import type { SandboxSpec } from '../../src/sandbox/runtime.js';
import { makeTempDir } from '../unit/sandbox-helpers.js';
import { collect, expectIsolated, median } from './runtime-helpers.js';

const scratch = makeTempDir('nanoclaw-bwrap-');
const runtime = new BwrapRuntime({ agentRunnerDir: path.join(scratch, 'no-runner'), stopGraceMs: 1000 });

function bare(name: string, command: string[]): SandboxSpec {
  return { name, image: 'host', mounts: [], env: {}, workdir: '/', labels: {}, command };
}

/** Host processes of the sandboxed command `sleep <marker>` itself (not bwrap, whose args match too). */
function processesWith(marker: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((pid) => {
      try {
        const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return comm === 'sleep' && cmd.includes(marker) ? [Number(pid)] : [];
      } catch {
        return [];
      }
    });
}

async function waitUntil(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('bwrap runtime (real bubblewrap)', () => {
  beforeAll(async () => {
    await runtime.ensureRunning(); // missing bwrap or user namespaces fail the suite, never skip it
  });
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('isolates a non-main group: own folders only, uid 1000, no caps, lo only, read-only root', async () => {
    await expectIsolated(runtime, 'host', false);
  });

  it('shows main the project read-only with .env, store/ and data/ hidden', async () => {
    await expectIsolated(runtime, 'host', true);
  });

  it('runs bwrap itself as uid 1000 when the host is root, with a clean environment', async () => {
    process.env.LEAK_PROBE = 'host-only';
    const proc = runtime.spawn({
      ...bare('env', ['sh', '-c', 'env | sort; getent passwd node']),
      env: { TZ: 'UTC' },
    });
    expect(fs.statSync(`/proc/${proc.pid}`).uid).toBe(1000);
    const done = await collect(proc);
    delete process.env.LEAK_PROBE;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('TZ=UTC');
    expect(done.stdout).toContain('HOME=/home/node');
    // Nothing of the host's environment leaks in (the test runner's own variables included).
    expect(done.stdout).not.toMatch(/VITEST|npm_|LEAK_PROBE/);
    expect(done.stdout).toContain('node:x:1000:1000:node:/home/node:/bin/sh');
  });

  it('reports whether the host build of the agent-runner exists', async () => {
    expect(await runtime.imageExists('anything')).toBe(false);
    const dir = path.join(scratch, 'runner');
    fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'dist', 'index.js'), '');
    expect(await new BwrapRuntime({ agentRunnerDir: dir }).imageExists('anything')).toBe(true);
  });

  it('stop() ends a long-running sandbox and everything in it', async () => {
    const marker = `${(Date.now() % 100000) + 700000}`;
    const proc = runtime.spawn(bare('long', ['sh', '-c', `trap "" TERM; echo up; sleep ${marker}`]));
    const done = collect(proc);
    await new Promise<void>((resolve) => proc.stdout?.once('data', () => resolve()));
    await waitUntil(() => processesWith(`sleep ${marker}`).length > 0);
    await runtime.stop('long');
    const finished = await done;
    expect(finished.code === 0).toBe(false);
    await waitUntil(() => processesWith(`sleep ${marker}`).length === 0);
    await runtime.stop('long'); // stopping what is gone is a no-op
  });

  it('sandboxes die with the host process, so there are never orphans to clean up', async () => {
    const marker = `${(Date.now() % 100000) + 800000}`;
    const script = path.join(scratch, 'host.mts');
    const bwrapModule = path.resolve('src/sandbox/runtimes/bwrap.ts');
    fs.writeFileSync(
      script,
      `
      import { BwrapRuntime } from ${JSON.stringify(bwrapModule)};
      const rt = new BwrapRuntime({ agentRunnerDir: '/nonexistent' });
      const p = rt.spawn({ name: 'o', image: 'host', mounts: [], env: {}, workdir: '/', labels: {}, command: ['sleep', '${marker}'] });
      p.on('spawn', () => console.log('spawned'));
      setInterval(() => {}, 1000);
    `,
    );
    const host = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => host.stdout.once('data', () => resolve()));
    await waitUntil(() => processesWith(`sleep ${marker}`).length > 0);
    host.kill('SIGKILL');
    await waitUntil(() => processesWith(`sleep ${marker}`).length === 0);
    expect(await runtime.cleanupOrphans('any')).toEqual([]);
  });

  it('measures spawn → first output (reported, not asserted)', async () => {
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const done = await collect(runtime.spawn(bare(`latency-${i}`, ['echo', 'ready'])));
      expect(done.stdout.trim()).toBe('ready');
      samples.push(done.firstOutputMs ?? NaN);
    }
    console.info(`bwrap spawn→first output: median ${median(samples)} ms of [${samples.join(', ')}]`);
  });
});
