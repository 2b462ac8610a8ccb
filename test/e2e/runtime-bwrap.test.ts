import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_UID } from '../../src/config.js';
import { BwrapRuntime, bwrapArgs } from '../../src/sandbox/runtimes/bwrap.js';
import { syscallNumber, type SeccompArch } from '../../src/sandbox/runtimes/seccomp.js';
import { sandboxUser, type SandboxSpec } from '../../src/sandbox/runtime.js';
import { makeTempDir } from '../unit/sandbox-helpers.js';
import { collect, expectIsolated, median, parseProbe } from './runtime-helpers.js';

const scratch = makeTempDir('nanoclaw-bwrap-');
const runtime = new BwrapRuntime({ agentRunnerDir: path.join(scratch, 'no-runner'), stopGraceMs: 1000 });
/** The uid a sandbox runs as with the default settings: 61000 under a root host, else our own. */
const user = sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID });

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

  it('isolates a non-main group: own folders only, sandbox uid, no caps, lo only, read-only root', async () => {
    await expectIsolated(runtime, 'host', false);
  });

  it('shows main the project read-only with .env, store/ and data/ hidden', async () => {
    await expectIsolated(runtime, 'host', true);
  });

  it('runs bwrap itself as the sandbox uid when the host is root, with a clean environment', async () => {
    process.env.LEAK_PROBE = 'host-only';
    const proc = runtime.spawn({
      ...bare('env', ['sh', '-c', 'env | sort; getent passwd node; id -un']),
      env: { TZ: 'UTC' },
    });
    expect(fs.statSync(`/proc/${proc.pid}`).uid).toBe(user.uid);
    const done = await collect(proc);
    delete process.env.LEAK_PROBE;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('TZ=UTC');
    expect(done.stdout).toContain('HOME=/home/node');
    // Nothing of the host's environment leaks in (the test runner's own variables included).
    expect(done.stdout).not.toMatch(/VITEST|npm_|LEAK_PROBE/);
    expect(done.stdout).toContain(`node:x:${user.uid}:${user.gid}:node:/home/node:/bin/sh`);
    expect(done.stdout.trim().split('\n').at(-1)).toBe('node');
  });

  it('reports whether the host build of the agent-runner exists', async () => {
    expect(await runtime.imageExists()).toBe(false);
    const dir = path.join(scratch, 'runner');
    fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'dist', 'index.js'), '');
    expect(await new BwrapRuntime({ agentRunnerDir: dir }).imageExists()).toBe(true);
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
      const p = rt.spawn({ name: 'o-${marker}', image: 'host', mounts: [], env: {}, workdir: '/', labels: {}, command: ['sleep', '${marker}'] });
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
    expect(await runtime.cleanupOrphans()).toEqual([]);
    // The killed host could not remove the sandbox's cgroup.
    for (const dir of ['nanoclaw', 'pids/nanoclaw', 'memory/nanoclaw'].map(
      (d) => `/sys/fs/cgroup/${d}/o-${marker}`,
    ))
      if (fs.existsSync(dir)) fs.rmdirSync(dir);
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

/** The host's architecture in the seccomp tables' terms; any other fails the suite loudly. */
function seccompArch(): SeccompArch {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  throw new Error(`no seccomp syscall table for ${process.arch}`);
}

/**
 * Raw syscalls from perl (Debian's perl-base is essential, so always there), each printed as
 * name=ok or name=<errno>. Calls an unprivileged process may normally make, so a refusal is the
 * filter's doing: the same probe runs without the filter as the control.
 */
function syscallProbe(): string {
  const arch = seccompArch();
  const nr = (name: string) => syscallNumber(name, arch) as number;
  const calls: Array<[string, number, ...number[]]> = [
    ['keyctl', nr('keyctl'), 0, -3, 0], // KEYCTL_GET_KEYRING_ID of the session keyring
    ['add_key', nr('add_key'), 0, 0, 0, 0, 0],
    ['bpf', nr('bpf'), 0, 0, 0],
    ['ptrace', nr('ptrace'), 0, 0, 0, 0], // PTRACE_TRACEME
    ['personality', nr('personality'), 0x0040000], // ADDR_NO_RANDOMIZE
    ['clone3', nr('clone3'), 0, 0],
    ['perf_event_open', nr('perf_event_open'), 0, 0, -1, -1, 0],
    ['unshare', nr('unshare'), 0x10000000], // CLONE_NEWUSER
    ['setns', nr('setns'), 0, 0],
    ...(arch === 'x86_64' ? [['x32_getpid', 0x40000000 | 39] as [string, number]] : []),
  ];
  const list = calls.map(([name, ...args]) => `["${name}", ${args.join(', ')}]`).join(', ');
  return `for my $c (${list}) { my ($n, @a) = @$c; $! = 0; my $r = syscall(shift(@a), @a); print "$n=", ($r == -1 ? 0 + $! : "ok"), "\\n"; }`;
}

const EPERM = '1';

/** Where a running process's cgroups are, with the limit each file sets (v1 or v2 alike). */
function limitsOf(pid: number): { dirs: string[]; pids: string; memory: string } {
  const dirs: string[] = [];
  let pids = '';
  let memory = '';
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, controllers = '', cgroup = ''] = line.split(':');
    if (!cgroup.includes('/nanoclaw/')) continue;
    if (controllers === '') {
      const dir = path.join('/sys/fs/cgroup', cgroup);
      dirs.push(dir);
      pids = fs.readFileSync(path.join(dir, 'pids.max'), 'utf8').trim();
      memory = fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim();
    } else if (controllers.split(',').includes('pids')) {
      const dir = path.join('/sys/fs/cgroup/pids', cgroup);
      dirs.push(dir);
      pids = fs.readFileSync(path.join(dir, 'pids.max'), 'utf8').trim();
    } else if (controllers.split(',').includes('memory')) {
      const dir = path.join('/sys/fs/cgroup/memory', cgroup);
      dirs.push(dir);
      memory = fs.readFileSync(path.join(dir, 'memory.limit_in_bytes'), 'utf8').trim();
    }
  }
  return { dirs, pids, memory };
}

describe('bwrap hardening (real sandboxes, proven from inside)', () => {
  it('refuses new namespaces and mounts: --disable-userns plus the seccomp filter', async () => {
    const done = await collect(
      runtime.spawn(
        bare('ns', [
          'sh',
          '-c',
          [
            'unshare -U true 2>/dev/null && echo unshare_user=ok || echo unshare_user=refused',
            'unshare -m true 2>/dev/null && echo unshare_mount=ok || echo unshare_mount=refused',
            'unshare -n true 2>/dev/null && echo unshare_net=ok || echo unshare_net=refused',
            'mkdir -p /tmp/x && (mount -t tmpfs none /tmp/x 2>/dev/null && echo mount=ok || echo mount=refused)',
            'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr -d " \\t" | tr ":" "="',
          ].join('\n'),
        ]),
      ),
    );
    expect(done.code, done.stderr).toBe(0);
    const probe = parseProbe(done.stdout);
    expect(probe).toMatchObject({
      unshare_user: 'refused',
      unshare_mount: 'refused',
      unshare_net: 'refused',
      mount: 'refused',
      NoNewPrivs: '1',
      Seccomp: '2', // SECCOMP_MODE_FILTER
    });
  });

  it('refuses keyctl, bpf, ptrace, perf, unsafe personalities and clone3 that work without the filter', async () => {
    const command = ['perl', '-e', syscallProbe()];
    const filtered = await collect(runtime.spawn(bare('syscalls', command)));
    expect(filtered.code, filtered.stderr).toBe(0);
    // The control: the same sandbox, bwrap given no --seccomp.
    const control = await collect(
      spawn('bwrap', bwrapArgs(bare('control', command), { agentRunnerDir: '/nonexistent', user }), {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {}),
      }),
    );
    expect(control.code, control.stderr).toBe(0);
    const got = parseProbe(filtered.stdout);
    const without = parseProbe(control.stdout);
    expect(without).toMatchObject({ keyctl: 'ok', ptrace: 'ok', personality: 'ok', clone3: '22' });
    expect(got).toMatchObject({
      keyctl: EPERM,
      add_key: EPERM,
      bpf: EPERM,
      ptrace: EPERM,
      personality: EPERM,
      clone3: '38', // ENOSYS: glibc falls back to clone()
      perf_event_open: EPERM,
      unshare: EPERM,
      setns: EPERM,
    });
    if (seccompArch() === 'x86_64') expect(got.x32_getpid).toBe(EPERM);
  });

  it('keeps threads and child processes working (node worker threads, a shell pipeline)', async () => {
    const script =
      "const { Worker } = require('worker_threads');" +
      'new Worker(\'require("worker_threads").parentPort.postMessage(6 * 7)\', { eval: true })' +
      ".on('message', (m) => console.log('worker=' + m));" +
      "require('child_process').exec('echo hi | tr a-z A-Z', (e, out) => console.log('child=' + out.trim()));";
    const done = await collect(runtime.spawn(bare('threads', ['node', '-e', script])));
    expect(done.code, done.stderr).toBe(0);
    expect(parseProbe(done.stdout)).toMatchObject({ worker: '42', child: 'HI' });
  });

  it('gives each sandbox its own cgroup with pids 512 and memory 2 GiB, removed after it exits', async () => {
    const proc = runtime.spawn(bare('limits', ['sh', '-c', 'echo up; sleep 5']));
    const done = collect(proc);
    await new Promise<void>((resolve) => proc.stdout?.once('data', () => resolve()));
    const limits = limitsOf(proc.pid!);
    expect(limits.dirs.length).toBeGreaterThan(0);
    expect(limits.pids).toBe('512');
    expect(limits.memory).toBe(String(2 * 1024 ** 3));
    await runtime.stop('limits');
    await done;
    await waitUntil(() => limits.dirs.every((dir) => !fs.existsSync(dir)));
  });

  it('stops a fork loop at the pids limit', async () => {
    const forks =
      'my $n = 0; my $err = "none"; for (1 .. 100) { my $p = fork(); ' +
      'if (!defined $p) { $err = 0 + $!; last } if ($p == 0) { sleep 20; exit 0 } $n++ } ' +
      'print "forked=$n\\nerrno=$err\\n";';
    const capped = new BwrapRuntime({
      agentRunnerDir: '/nonexistent',
      limits: { pidsMax: 32, memoryBytes: 2 * 1024 ** 3 },
    });
    const small = parseProbe(
      (await collect(capped.spawn(bare('forks-capped', ['perl', '-e', forks])))).stdout,
    );
    expect(Number(small.forked)).toBeLessThan(32);
    expect(small.errno).toBe('11'); // EAGAIN
    // The same loop under the default limit of 512 is not stopped: the cap above did it.
    const big = parseProbe((await collect(runtime.spawn(bare('forks', ['perl', '-e', forks])))).stdout);
    expect(big).toMatchObject({ forked: '100', errno: 'none' });
  });

  it('kills a sandbox that allocates past its memory limit', async () => {
    const capped = new BwrapRuntime({
      agentRunnerDir: '/nonexistent',
      limits: { pidsMax: 512, memoryBytes: 160 * 1024 ** 2 },
    });
    const allocate = (mib: number) =>
      `const a = []; for (let i = 0; i < ${mib / 8}; i++) a.push(Buffer.alloc(8 << 20, 1)); console.log('allocated');`;
    const fits = await collect(capped.spawn(bare('mem-fits', ['node', '-e', allocate(32)])));
    expect(fits.stdout, fits.stderr).toContain('allocated');
    const over = await collect(capped.spawn(bare('mem-over', ['node', '-e', allocate(512)])));
    expect(over.stdout).not.toContain('allocated');
    expect(over.code).not.toBe(0);
  });

  it('does not start a sandbox it cannot put in its cgroup (fail closed)', async () => {
    const broken = new BwrapRuntime({
      agentRunnerDir: '/nonexistent',
      cgroups: () => ({
        version: 'v2',
        bases: { pids: '/dev/null/nanoclaw', memory: '/dev/null/nanoclaw' }, // mkdir: ENOTDIR
        missing: [],
      }),
    });
    const out = makeTempDir('nanoclaw-bwrap-out-');
    try {
      fs.chmodSync(out, 0o777); // writable by the sandbox uid, had it run
      const done = await collect(
        broken.spawn({
          ...bare('no-cgroup', ['sh', '-c', 'echo ran > /out/ran']),
          mounts: [{ hostPath: out, containerPath: '/out', readonly: false }],
        }),
      );
      expect(done.signal).toBe('SIGKILL');
      expect(fs.existsSync(path.join(out, 'ran'))).toBe(false);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
