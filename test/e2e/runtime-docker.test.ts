import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime, dockerRunArgs } from '../../src/sandbox/runtimes/docker.js';
import { DEFAULT_SANDBOX_UID } from '../../src/config.js';
import { INSTANCE_LABEL, sandboxUser, type SandboxSpec } from '../../src/sandbox/runtime.js';
import { collect, ensureBusyboxImage, expectIsolated, median, parseProbe } from './runtime-helpers.js';

const runtime = new DockerRuntime({ stopGraceSeconds: 1 });
let image: string;
/** The default settings' sandbox user: 61000 under a root host, else our own uid. */
const user = sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID });
const AGENT_IMAGE = 'nanoclaw-agent:latest';

const isRunning = (name: string) =>
  spawnSync('docker', ['ps', '-q', '--filter', `name=^${name}$`], { encoding: 'utf8' }).stdout.trim() !== '';

function sleeper(name: string, instanceId: string, command = ['sleep', '300']): SandboxSpec {
  return {
    name,
    image,
    mounts: [],
    env: {},
    workdir: '/',
    labels: { [INSTANCE_LABEL]: instanceId },
    user,
    command,
  };
}

async function waitUntil(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('docker runtime (real daemon)', () => {
  beforeAll(async () => {
    await runtime.ensureRunning(); // a missing daemon fails the suite, never skips it
    image = ensureBusyboxImage();
  });

  afterAll(async () => {
    // A failed assertion must not leave sandboxes running for the next suite.
    for (const instance of ['stop-test', 'mine', 'someone-else', 'latency', 'x', 'e2e'])
      await runtime.cleanupOrphans(instance);
  });

  it('isolates a non-main group: own folders only, sandbox uid, no caps, lo only, read-only root', async () => {
    await expectIsolated(runtime, image, false);
  });

  it('shows main the project read-only with .env, store/ and data/ hidden', async () => {
    await expectIsolated(runtime, image, true);
  });

  it('knows which images exist', async () => {
    expect(await runtime.imageExists(image)).toBe(true);
    expect(await runtime.imageExists('nanoclaw-no-such-image:never')).toBe(false);
  });

  it('never pulls: a missing image fails fast', async () => {
    const done = await collect(
      runtime.spawn({
        ...sleeper(`nanoclaw-nopull-${Date.now()}`, 'x'),
        image: 'nanoclaw-no-such-image:never',
      }),
    );
    expect(done.code).not.toBe(0);
    expect(done.stderr).toMatch(/no such image|not found|pull/i);
  });

  it('stop() ends a sandbox that ignores SIGTERM, then it is gone', async () => {
    const name = `nanoclaw-stoptest-${Date.now()}`;
    const proc = runtime.spawn(
      sleeper(name, 'stop-test', ['sh', '-c', 'trap "" TERM; echo up; while :; do sleep 1; done']),
    );
    const done = collect(proc);
    await new Promise<void>((resolve) => proc.stdout?.once('data', () => resolve()));
    await waitUntil(() => isRunning(name));
    const started = Date.now();
    await runtime.stop(name);
    const finished = await done;
    expect(finished.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(isRunning(name)).toBe(false);
  });

  it('cleanupOrphans removes only sandboxes labelled with this instance', async () => {
    const stamp = Date.now();
    const mine = [`nanoclaw-orphan-a-${stamp}`, `nanoclaw-orphan-b-${stamp}`];
    const theirs = `nanoclaw-orphan-other-${stamp}`;
    const procs = [
      ...mine.map((n) => runtime.spawn(sleeper(n, 'mine'))),
      runtime.spawn(sleeper(theirs, 'someone-else')),
    ];
    const exits = procs.map((p) => collect(p));
    await waitUntil(() => [...mine, theirs].every(isRunning));

    const removed = await runtime.cleanupOrphans('mine');
    expect(removed.sort()).toEqual([...mine].sort());
    expect(mine.some(isRunning)).toBe(false);
    expect(isRunning(theirs)).toBe(true);

    expect(await runtime.cleanupOrphans('someone-else')).toEqual([theirs]);
    await Promise.all(exits);
  });

  it('uses the hardening flags on every run', () => {
    const args = dockerRunArgs(sleeper('n', 'i'));
    for (const flag of [
      '--network none',
      '--cap-drop ALL',
      '--security-opt no-new-privileges',
      '--read-only',
      '--init',
      '--pull never',
      `--user ${user.uid}:${user.gid}`,
      `/home/node:rw,exec,nosuid,nodev,mode=0755,uid=${user.uid},gid=${user.gid}`,
    ])
      expect(args.join(' ')).toContain(flag);
  });

  it('gives the sandbox uid an account and a home in the agent image (id, os.userInfo(), $HOME)', async () => {
    const script = [
      'id',
      "node -e \"const u = require('os').userInfo(); console.log('userinfo=' + u.username + ':' + u.uid + ':' + u.homedir)\"",
      'echo hi > "$HOME/probe" && echo "home_write=$(cat "$HOME/probe")"',
      'echo "home_owner=$(stat -c %u "$HOME")"',
      'echo x >> /etc/passwd 2>/dev/null && echo passwd=writable || echo passwd=readonly',
    ].join('; ');
    const spec = {
      ...sleeper(`nanoclaw-account-${Date.now()}`, 'x', ['sh', '-c', script]),
      image: AGENT_IMAGE,
      env: { HOME: '/home/node' },
    };
    // A command replaces the image's entrypoint (the runner) with a shell.
    const done = await collect(runtime.spawn(spec));
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`uid=${user.uid}(node) gid=${user.gid}(node)`);
    const probe = parseProbe(done.stdout);
    expect(probe).toMatchObject({
      userinfo: `node:${user.uid}:/home/node`,
      home_write: 'hi',
      home_owner: String(user.uid),
      passwd: 'readonly',
    });
  });

  it('measures spawn → first output (reported, not asserted)', async () => {
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const done = await collect(
        runtime.spawn(sleeper(`nanoclaw-latency-${Date.now()}`, 'latency', ['echo', 'ready'])),
      );
      expect(done.stdout.trim()).toBe('ready');
      samples.push(done.firstOutputMs ?? NaN);
    }
    console.info(`docker spawn→first output: median ${median(samples)} ms of [${samples.join(', ')}]`);
  });
});
