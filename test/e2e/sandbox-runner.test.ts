import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { SandboxRunner, type SandboxRunnerDeps } from '../../src/sandbox/sandbox-runner.js';
import { sandboxUser, type SandboxRuntime } from '../../src/sandbox/runtime.js';
import { BwrapRuntime } from '../../src/sandbox/runtimes/bwrap.js';
import { DockerRuntime } from '../../src/sandbox/runtimes/docker.js';
import type { AgentInput } from '../../src/contract/ipc.js';
import type { AgentOutput } from '../../src/types.js';
import { makeTempDir, testConfig, testGroup } from '../unit/sandbox-helpers.js';
import { ensureBusyboxImage, median } from './runtime-helpers.js';

/** A fake agent: shell functions that speak the sandbox's stdout protocol. */
const AGENT_PRELUDE = `
emit() { printf '%s\\n%s\\n%s\\n' '---NANOCLAW_OUTPUT_START---' "{\\"status\\":\\"success\\",\\"result\\":\\"$1\\",\\"newSessionId\\":\\"sess-$1\\"}" '---NANOCLAW_OUTPUT_END---'; }
wait_close() { while [ ! -e /workspace/inbox/input/_close ]; do sleep 0.1; done; }
`;

const input: AgentInput = {
  prompt: '<messages><message sender="Ann">very private prompt text</message></messages>',
  groupFolder: 'team',
  chatJid: 'local:team',
  isMain: false,
  assistantName: 'Andy',
};

interface Harness {
  config: Config;
  run(
    script: string,
    options?: { config?: Partial<Config>; deps?: Partial<SandboxRunnerDeps>; input?: Partial<AgentInput> },
  ): Promise<{
    result: AgentOutput;
    outputs: { output: AgentOutput; at: number }[];
    started: string[];
    startedAt: number;
    endedAt: number;
  }>;
}

const runtimes: { name: string; make: () => SandboxRuntime; image: () => string }[] = [
  { name: 'docker', make: () => new DockerRuntime({ stopGraceSeconds: 1 }), image: ensureBusyboxImage },
  {
    name: 'bwrap',
    make: () => new BwrapRuntime({ agentRunnerDir: '/nonexistent', stopGraceMs: 1000 }),
    image: () => 'host',
  },
];

/** The real runtime, running a shell script from the group folder instead of the agent-runner. */
function scripted(runtime: SandboxRuntime): SandboxRuntime {
  return {
    kind: runtime.kind,
    ensureRunning: () => runtime.ensureRunning(),
    imageExists: (i) => runtime.imageExists(i),
    spawn: (spec) => runtime.spawn({ ...spec, command: ['sh', '/workspace/group/agent.sh'] }),
    stop: (n) => runtime.stop(n),
    cleanupOrphans: (id) => runtime.cleanupOrphans(id),
  };
}

describe.each(runtimes)('SandboxRunner on $name', ({ name, make, image }) => {
  const real = make();
  const runtime = scripted(real);
  const homes: string[] = [];
  const latencies: number[] = [];

  beforeAll(async () => {
    await runtime.ensureRunning();
    image();
  });
  afterAll(() => {
    for (const home of homes) fs.rmSync(home, { recursive: true, force: true });
    console.info(
      `${name}: SandboxRunner spawn→first framed output median ${median(latencies)} ms of [${latencies.join(', ')}]`,
    );
  });

  function harness(): Harness {
    const home = makeTempDir('nanoclaw-runner-');
    homes.push(home);
    const config = testConfig(home, { containerImage: image(), instanceId: 'runner-test' });
    return {
      config,
      async run(script, options = {}) {
        const cfg = { ...config, ...options.config };
        fs.mkdirSync(path.join(home, 'groups', 'team'), { recursive: true });
        fs.writeFileSync(path.join(home, 'groups', 'team', 'agent.sh'), AGENT_PRELUDE + script);
        const outputs: { output: AgentOutput; at: number }[] = [];
        const started: string[] = [];
        const runner = new SandboxRunner({
          config: cfg,
          runtime,
          allowlist: () => null,
          ...options.deps,
        });
        const startedAt = Date.now();
        const result = await runner.run(
          testGroup('team'),
          { ...input, ...options.input },
          {
            onOutput: async (output) => {
              outputs.push({ output, at: Date.now() });
            },
            onStarted: (sandbox) => started.push(sandbox),
          },
        );
        if (outputs[0]) latencies.push(outputs[0].at - startedAt);
        return { result, outputs, started, startedAt, endedAt: Date.now() };
      },
    };
  }

  it('feeds the input on stdin, delivers results strictly in order and logs the run', async () => {
    const h = harness();
    const events: string[] = [];
    fs.mkdirSync(path.join(h.config.groupsDir, 'team'), { recursive: true });
    fs.writeFileSync(
      path.join(h.config.groupsDir, 'team', 'agent.sh'),
      `${AGENT_PRELUDE}read -r line; printf '%s' "$line" > /workspace/group/input.json
echo "debug noise"; emit one; echo "warn: stderr noise" >&2; emit two; emit three`,
    );
    const started: string[] = [];
    const runner = new SandboxRunner({
      config: h.config,
      runtime,
      allowlist: () => null,
    });
    const result = await runner.run(testGroup('team'), input, {
      onOutput: async (output) => {
        events.push(`start:${output.result}`);
        // The first handler is slow: the next must still wait for it.
        await new Promise((r) => setTimeout(r, output.result === 'one' ? 300 : 10));
        events.push(`end:${output.result}`);
      },
      onStarted: (sandbox) => started.push(sandbox),
    });

    expect(result).toEqual({ status: 'success', result: 'three', newSessionId: 'sess-three' });
    expect(events).toEqual(['start:one', 'end:one', 'start:two', 'end:two', 'start:three', 'end:three']);
    expect(started).toHaveLength(1);
    expect(started[0]).toMatch(/^nanoclaw-team-\d+$/);
    const received = path.join(h.config.groupsDir, 'team', 'input.json');
    expect(JSON.parse(fs.readFileSync(received, 'utf8'))).toEqual(input);
    expect(fs.statSync(received).uid).toBe(sandboxUser(h.config).uid);

    const logsDir = path.join(h.config.groupsDir, 'team', 'logs');
    const logs = fs.readdirSync(logsDir).filter((f) => f.endsWith('.log'));
    expect(logs).toHaveLength(1);
    const log = fs.readFileSync(path.join(logsDir, logs[0]!), 'utf8');
    expect(log).toContain(`Sandbox: ${started[0]}`);
    expect(log).toContain('Exit code: 0');
    expect(log).toContain('-> /workspace/group (rw)');
    expect(log).toContain('warn: stderr noise');
    expect(log).not.toContain('very private prompt text');
  });

  it('writes _close after IDLE_TIMEOUT without output, ignoring a stale one', async () => {
    const h = harness();
    fs.mkdirSync(path.join(h.config.ipcDir, 'team', 'to-agent', 'input'), { recursive: true });
    fs.writeFileSync(path.join(h.config.ipcDir, 'team', 'to-agent', 'input', '_close'), ''); // left by an earlier run
    const run = await h.run('emit first; wait_close; emit closed', { config: { idleTimeoutMs: 1500 } });
    expect(run.result).toEqual({ status: 'success', result: 'closed', newSessionId: 'sess-closed' });
    const gap = run.outputs[1]!.at - run.outputs[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(1400);
    expect(gap).toBeLessThan(8000);
  });

  it('resets the hard timeout on each output, then stops a sandbox that ignores _close', async () => {
    const h = harness();
    // hard timeout = max(1000, 1000 + 500) = 1500 ms; the outputs span 3.5 s.
    const run = await h.run(
      'trap "" TERM; for i in 1 2 3 4 5; do emit $i; sleep 0.7; done; while :; do sleep 1; done',
      {
        config: { idleTimeoutMs: 1000, containerTimeoutMs: 1000 },
        deps: { closeGraceMs: 500 },
      },
    );
    expect(run.outputs.map((o) => o.output.result)).toEqual(['1', '2', '3', '4', '5']);
    // A timeout after output is a normal end.
    expect(run.result).toEqual({ status: 'success', result: '5', newSessionId: 'sess-5' });
    const afterLast = run.endedAt - run.outputs[4]!.at;
    expect(afterLast).toBeGreaterThanOrEqual(1400);
    expect(afterLast).toBeLessThan(8000);
  });

  it('stops a sandbox that never answers and reports the timeout as an error', async () => {
    const h = harness();
    const run = await h.run('trap "" TERM; while :; do sleep 1; done', {
      config: { idleTimeoutMs: 1000, containerTimeoutMs: 1000 },
      deps: { closeGraceMs: 500 },
    });
    expect(run.result.status).toBe('error');
    expect(run.result.error).toMatch(/no output within 1500 ms/);
    expect(run.endedAt - run.startedAt).toBeLessThan(10_000);
  });

  it('closes a scheduled task sandbox taskCloseDelayMs after its first result', async () => {
    const h = harness();
    const run = await h.run('emit first; wait_close; emit closed', {
      config: { idleTimeoutMs: 60_000, taskCloseDelayMs: 700 },
      input: { isScheduledTask: true },
    });
    expect(run.result.result).toBe('closed');
    const gap = run.outputs[1]!.at - run.outputs[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(600);
    expect(gap).toBeLessThan(5000);
  });

  it('reports a crash without output with the last stderr lines', async () => {
    const h = harness();
    const run = await h.run('echo "booting"; echo "fatal: model unreachable" >&2; exit 3');
    expect(run.result.status).toBe('error');
    expect(run.result.error).toMatch(/code 3/);
    expect(run.result.error).toContain('fatal: model unreachable');
    const logsDir = path.join(h.config.groupsDir, 'team', 'logs');
    const log = fs.readFileSync(path.join(logsDir, fs.readdirSync(logsDir)[0]!), 'utf8');
    expect(log).toContain('Exit code: 3');
  });

  it('reports the error the agent wrote before exiting with 1, so the failure notice can name it', async () => {
    const h = harness();
    const run = await h.run(
      `emit first
printf '%s\\n%s\\n%s\\n' '---NANOCLAW_OUTPUT_START---' '{"status":"error","result":null,"error":"API Error: 429 Daily token budget spent"}' '---NANOCLAW_OUTPUT_END---'
echo "[agent-runner] finished" >&2; exit 1`,
    );
    expect(run.result).toMatchObject({
      status: 'error',
      result: null,
      error: 'API Error: 429 Daily token budget spent',
      newSessionId: 'sess-first',
    });
    // Typed by what knows the cause (here the runtime's own checks), never read from the error text.
    expect(run.result.failure).toMatchObject({ kind: expect.stringMatching(/^(permanent|transient)$/) });
    const logsDir = path.join(h.config.groupsDir, 'team', 'logs');
    const log = fs.readFileSync(path.join(logsDir, fs.readdirSync(logsDir)[0]!), 'utf8');
    expect(log).toContain('Status: error — API Error: 429 Daily token budget spent');
    expect(log).toContain('Exit code: 1');
  });

  it('stops a sandbox whose output passes 10 MiB', async () => {
    const h = harness();
    const run = await h.run('emit early; yes "noise noise noise noise noise noise noise"');
    expect(run.outputs.map((o) => o.output.result)).toEqual(['early']);
    expect(run.result.status).toBe('error');
    expect(run.result.error).toMatch(/10 MiB/);
    expect(run.result.newSessionId).toBe('sess-early');
    expect(run.endedAt - run.startedAt).toBeLessThan(20_000);
  });
});
