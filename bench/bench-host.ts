import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { App } from '../src/app.js';
import { LocalChannel } from '../src/channels/local/local-channel.js';
import { loadConfig, type Config, type RuntimeKind } from '../src/config.js';
import { createRuntime } from '../src/sandbox/detect.js';
import type { SandboxRuntime, SandboxSpec } from '../src/sandbox/runtime.js';
import type { ChannelCallbacks } from '../src/types.js';
import type { WarmAheadOptions } from '../src/warm-ahead.js';
import { FakeRuntime, type Behaviour } from '../test/helpers/fake-runtime.js';
import {
  isAgentTurn,
  lastUserText,
  startMockAnthropic,
  type MockAnthropic,
} from '../test/fixtures/mock-anthropic.js';

/** Every benchmark message carries a marker like `bm-c3`; it names the sample at each checkpoint. */
const MARKER = /\bbm-[a-z0-9-]+/g;
export const markersIn = (text: string): string[] => text.match(MARKER) ?? [];

export type Checkpoint = 'accepted' | 'model' | 'delivered';

/** The first time each marker passed each checkpoint, on one monotonic clock (performance.now). */
export class Checkpoints {
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, Array<(at: number) => void>>();

  record(checkpoint: Checkpoint, text: string, at = performance.now()): void {
    for (const marker of markersIn(text)) {
      const key = `${checkpoint}:${marker}`;
      if (this.seen.has(key)) continue;
      this.seen.set(key, at);
      for (const wake of this.waiters.get(key) ?? []) wake(at);
      this.waiters.delete(key);
    }
  }

  has(checkpoint: Checkpoint, marker: string): boolean {
    return this.seen.has(`${checkpoint}:${marker}`);
  }

  wait(checkpoint: Checkpoint, marker: string, timeoutMs = 120_000): Promise<number> {
    const key = `${checkpoint}:${marker}`;
    const at = this.seen.get(key);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${marker} did not reach "${checkpoint}" within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const list = this.waiters.get(key) ?? [];
      list.push((when) => {
        clearTimeout(timer);
        resolve(when);
      });
      this.waiters.set(key, list);
    });
  }
}

export interface BenchHostOptions {
  /** A real sandbox runtime; the model is then the scripted mock behind the real model proxy. */
  runtime?: RuntimeKind;
  /** Lets a benchmark observe the runtime (e.g. when sandboxes are spawned). */
  wrapRuntime?: (runtime: SandboxRuntime) => SandboxRuntime;
  /** Otherwise an in-process sandbox that behaves like this (host-only benchmarks). */
  behaviour?: Behaviour;
  /** Settings as in the environment (IDLE_TIMEOUT, ...). */
  env?: Record<string, string>;
  /** Off unless given, as in the App. */
  warmAhead?: WarmAheadOptions;
}

export interface BenchHost {
  app: App;
  config: Config;
  home: string;
  local: LocalChannel;
  callbacks: ChannelCallbacks;
  checkpoints: Checkpoints;
  mock?: MockAnthropic;
  /** Posts through the local channel's HTTP API, as the chat page does. */
  post(chat: string, text: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The real App (store, loop, queue, IPC watcher, scheduler, proxies, sandbox runtime) in a temp
 * NANOCLAW_HOME, talking through the real local channel. The model is the scripted mock: it
 * answers every agent turn at once with the markers it was asked about.
 */
export async function startBenchHost(options: BenchHostOptions): Promise<BenchHost> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-bench-'));
  const cleanups: Array<() => Promise<void>> = [
    async () => fs.rmSync(home, { recursive: true, force: true }),
  ];
  try {
    return await buildBenchHost(options, home, cleanups);
  } catch (err) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    throw err;
  }
}

async function buildBenchHost(
  options: BenchHostOptions,
  home: string,
  cleanups: Array<() => Promise<void>>,
): Promise<BenchHost> {
  const checkpoints = new Checkpoints();
  // The sandbox user (uid 1000) must reach the group folders under the temp home.
  fs.chmodSync(home, 0o755);
  let mock: MockAnthropic | undefined;
  if (options.runtime) {
    mock = await startMockAnthropic({
      script: ({ body }) => {
        if (!isAgentTurn(body)) return { text: 'ok' };
        const asked = lastUserText(body);
        checkpoints.record('model', asked);
        return { text: `done ${markersIn(asked).join(' ')}`.trim() };
      },
    });
    const opened = mock;
    cleanups.push(() => opened.close());
    fs.writeFileSync(
      path.join(home, '.env'),
      `ANTHROPIC_API_KEY=sk-ant-bench-0123456789\nANTHROPIC_BASE_URL=${mock.url}\n`,
    );
  }
  const config = loadConfig({
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    TZ: 'UTC',
    LOCAL_CHANNEL_PORT: '0',
    IDLE_TIMEOUT: '600000',
    ...(options.runtime ? { CONTAINER_RUNTIME: options.runtime } : {}),
    ...options.env,
  });
  // The benchmark sends far more replies per minute than a person would: lift the outbound limit.
  fs.mkdirSync(config.configDir, { recursive: true });
  fs.writeFileSync(
    path.join(config.configDir, 'group-policy.json'),
    JSON.stringify({ default: { outboundPerMinute: 100_000, outboundBurst: 100_000 } }),
  );
  let runtime: SandboxRuntime | undefined;
  if (options.runtime) {
    runtime = await createRuntime(config);
    await runtime.ensureRunning();
    if (options.wrapRuntime) runtime = options.wrapRuntime(runtime);
  }
  const app = new App(config, runtime ?? new FakeRuntime(options.behaviour), {
    ...(options.warmAhead && { warmAhead: options.warmAhead }),
  });
  cleanups.push(() => app.stop());
  const local = app.channels[0] as LocalChannel;
  // "Accepted": the moment the channel hands the message to the host. "Delivered": the moment the
  // reply leaves the host through the channel.
  const ingest = app.ingest.bind(app);
  app.ingest = (message) => {
    checkpoints.record('accepted', message.content);
    ingest(message);
  };
  const send = local.sendMessage.bind(local);
  local.sendMessage = async (jid, text) => {
    await send(jid, text);
    checkpoints.record('delivered', text);
  };
  const callbacks: ChannelCallbacks = {
    onMessage: (message) => app.ingest(message),
    onChatMetadata: (chat) => app.store.messages.upsertChat(chat),
  };
  await app.start();

  return {
    app,
    config,
    home,
    local,
    callbacks,
    checkpoints,
    mock,
    async post(chat, text) {
      const res = await fetch(
        `http://127.0.0.1:${local.port}/api/chats/${encodeURIComponent(chat)}/messages`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${local.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ text }),
        },
      );
      if (res.status !== 202) throw new Error(`post to ${chat} failed: ${res.status} ${await res.text()}`);
    },
    async stop() {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/** The runtime as is, with `onSpawn` told whenever a sandbox is started (and when, in Date.now()). */
export function observeSpawns(
  runtime: SandboxRuntime,
  onSpawn: (spec: SandboxSpec, child: ChildProcess, spawnedAt: number) => void,
): SandboxRuntime {
  return {
    kind: runtime.kind,
    ensureRunning: () => runtime.ensureRunning(),
    imageExists: (image) => runtime.imageExists(image),
    spawn: (spec) => {
      const spawnedAt = Date.now();
      const child = runtime.spawn(spec);
      onSpawn(spec, child, spawnedAt);
      return child;
    },
    stop: (name) => runtime.stop(name),
    cleanupOrphans: (instanceId) => runtime.cleanupOrphans(instanceId),
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until the condition holds (the queue has no event for "sandbox gone"). */
export async function until(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}
