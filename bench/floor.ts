import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { loadConfig, type RuntimeKind } from '../src/config.js';
import { ProxyManager } from '../src/proxy/proxy-manager.js';
import { buildRuntime } from '../src/sandbox/detect.js';
import { buildMountPlan, CONTAINER_PATHS, prepareGroupDirs } from '../src/sandbox/mount-plan.js';
import {
  hostIsRoot,
  INSTANCE_LABEL,
  SANDBOX_HOME,
  sandboxUser,
  type SandboxSpec,
} from '../src/sandbox/runtime.js';
import type { RegisteredGroup } from '../src/types.js';
import { isAgentTurn, startMockAnthropic } from '../test/fixtures/mock-anthropic.js';

export interface FloorSamples {
  /** spawn → the first agent-turn request at the mock, bare SDK `query("hi")` (ms). */
  query: number[];
  /** spawn → exit of `true` (ms). */
  trueExit: number[];
  /** The image it ran (docker) and its size as `docker image inspect` reports it, in MB (10^6 bytes). */
  image?: { name: string; sizeMB: number };
}

/**
 * The bare Agent SDK in the sandbox: no agent-runner, no host. The sandbox has only loopback, so a
 * few lines forward a local port to the model proxy's socket, as the agent-runner does.
 */
const BARE_QUERY = `
import net from 'node:net';
import { query } from '/app/node_modules/@anthropic-ai/claude-agent-sdk/sdk.mjs';
const server = net.createServer((client) => {
  const upstream = net.connect('${CONTAINER_PATHS.proxy}/api.sock');
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream).pipe(client);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
process.env.ANTHROPIC_BASE_URL = 'http://127.0.0.1:' + server.address().port;
for await (const message of query({ prompt: 'hi' })) if (message.type === 'result') break;
process.exit(0);
`;

/** The group the cold measure (2) talks to, so the mounts are the same. */
const MAIN: RegisteredGroup = {
  jid: 'local:main',
  name: 'main',
  folder: 'main',
  trigger: '@Andy',
  requiresTrigger: false,
  isMain: true,
  addedAt: new Date(0).toISOString(),
};

/**
 * The cold-start floor on `kind`, without the host: the real runtime class, mount plan and model
 * proxy, the agent image (docker) or the host build of the agent-runner at /app (bwrap). The first
 * run of each is a warm-up and is not counted.
 */
export async function measureFloor(kind: RuntimeKind, runs: number): Promise<FloorSamples> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-floor-'));
  fs.chmodSync(home, 0o755); // the sandbox user must reach the group folders under it
  let modelAt: number | undefined;
  const mock = await startMockAnthropic({
    script: ({ body }) => {
      if (isAgentTurn(body)) modelAt ??= performance.now();
      return { text: 'ok' };
    },
  });
  const config = loadConfig({
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    TZ: 'UTC',
    CONTAINER_RUNTIME: kind,
  });
  const proxies = new ProxyManager({
    proxyDir: config.proxyDir,
    configDir: config.configDir,
    readSecrets: () => ({ ANTHROPIC_API_KEY: 'sk-ant-bench-0123456789', ANTHROPIC_BASE_URL: mock.url }),
    recordUsage: () => undefined,
    tokensUsedToday: () => 0,
    dailyTokenBudget: () => undefined,
    ...(hostIsRoot() && { sandboxUid: config.sandboxUid }),
  });
  try {
    const runtime = buildRuntime(kind, config);
    await runtime.ensureRunning();
    const user = sandboxUser(config);
    prepareGroupDirs(MAIN, config, user);
    await proxies.ensureGroup(MAIN.folder);
    const spec = (command: string[], i: number): SandboxSpec => ({
      name: `nanoclaw-floor-${process.pid}-${command[0]}-${i}`,
      image: config.containerImage,
      mounts: buildMountPlan(MAIN, config, []),
      env: {
        TZ: config.timezone,
        HOME: SANDBOX_HOME,
        ANTHROPIC_API_KEY: 'sk-ant-floor-placeholder', // the model proxy puts the real one in
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      },
      workdir: CONTAINER_PATHS.group,
      labels: { [INSTANCE_LABEL]: config.instanceId },
      user,
      command,
    });
    /** Spawns one sandbox and waits for it to exit: ms from spawn to its exit and to the model request. */
    const runOnce = async (command: string[], i: number) => {
      modelAt = undefined;
      const sandbox = spec(command, i);
      const spawnedAt = performance.now();
      const child = runtime.spawn(sandbox);
      let stderr = '';
      child.stdout?.resume();
      child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
      const timer = setTimeout(() => void runtime.stop(sandbox.name), 120_000);
      const [code] = (await once(child, 'close')) as [number | null];
      clearTimeout(timer);
      if (code !== 0) throw new Error(`${command[0]} in a ${kind} sandbox exited ${code}: ${stderr.trim()}`);
      return {
        exitMs: performance.now() - spawnedAt,
        modelMs: modelAt === undefined ? undefined : modelAt - spawnedAt,
      };
    };
    const samples: FloorSamples = { query: [], trueExit: [] };
    for (let i = 0; i <= runs; i++) {
      const { modelMs } = await runOnce(['node', '--input-type=module', '-e', BARE_QUERY], i);
      if (modelMs === undefined) throw new Error(`the bare query on ${kind} never reached the model`);
      if (i > 0) samples.query.push(modelMs);
    }
    for (let i = 0; i <= runs; i++) {
      const { exitMs } = await runOnce(['true'], i);
      if (i > 0) samples.trueExit.push(exitMs);
    }
    if (kind !== 'docker') return samples;
    const name = config.containerImage;
    const { stdout } = await promisify(execFile)('docker', [
      'image',
      'inspect',
      name,
      '--format',
      '{{.Size}}',
    ]);
    return { ...samples, image: { name, sizeMB: Number(stdout.trim()) / 1e6 } };
  } finally {
    await proxies.stop();
    await mock.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
}
