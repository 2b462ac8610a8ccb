import fs from 'node:fs';
import path from 'node:path';
import { App, type AppOptions } from '../../src/app.js';
import type { LocalChannel } from '../../src/channels/local/local-channel.js';
import { loadConfig, type Config, type RuntimeKind } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import { createRuntime } from '../../src/sandbox/detect.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { startMockAnthropic, type MockAnthropic, type MockScript } from '../fixtures/mock-anthropic.js';
import { localClient } from './local-client.js';
import { tempHome } from './temp-home.js';

export interface E2eHostOptions {
  /** A kind: the real runtime of that kind. An object: used as is (e.g. a FakeRuntime). */
  runtime: RuntimeKind | SandboxRuntime;
  /** The model behind the real model proxy (the mock's default script otherwise). */
  script?: MockScript;
  /** An existing home: a restart of the same installation. */
  home?: string;
  /** Settings as in the environment (IDLE_TIMEOUT, ...). */
  env?: Record<string, string>;
  /** Host timing the environment cannot set. */
  tune?: Partial<Config>;
  app?: AppOptions;
  /** Local chats registered as groups that need no trigger. */
  groups?: string[];
  /** Runs before the host starts (e.g. writes a policy file into home/config). */
  prepare?(home: string): void;
  /** Wraps the real runtime, e.g. to watch what each sandbox is started with. */
  wrapRuntime?(runtime: SandboxRuntime): SandboxRuntime;
}

export interface E2eHost {
  app: App;
  mock: MockAnthropic;
  home: string;
  config: Config;
  local: LocalChannel;
  post(chat: string, text: string): Promise<Response>;
  /** Posts a request body as is (extra fields, bad input). */
  postRaw(chat: string, body: string | Buffer, contentType?: string): Promise<Response>;
  /** Waits for an assistant message in the chat matching the predicate; returns its text. */
  reply(chat: string, match: (text: string) => boolean, timeoutMs?: number): Promise<string>;
  waitFor(chat: string, match: (text: string) => boolean, timeoutMs?: number): Promise<void>;
  /** Assistant messages of the chat as stored, oldest first. */
  assistantTexts(chat: string): string[];
  stop(): Promise<void>;
}

/**
 * The real host (store, queue, channels, proxies, sandbox runtime, agent image) in a temp
 * NANOCLAW_HOME, with the model proxy's upstream pointed at a scripted mock on loopback.
 */
export async function startE2eHost(opts: E2eHostOptions): Promise<E2eHost> {
  const mock = await startMockAnthropic(opts.script ? { script: opts.script } : {});
  const kind = typeof opts.runtime === 'string' ? opts.runtime : opts.runtime.kind;
  // Warm-ahead is off unless a test turns it on: spawn counts elsewhere assume no sandbox starts ahead.
  const env = {
    CONTAINER_RUNTIME: kind,
    LOCAL_CHANNEL_PORT: '0',
    IDLE_TIMEOUT: '4000',
    WARM_AHEAD: 'false',
    ...opts.env,
  };
  const t = opts.home ? undefined : tempHome(env);
  const home = opts.home ?? t!.home;
  // The sandbox user must be able to reach the group folders under the temp home.
  fs.chmodSync(home, 0o755);
  if (!opts.home)
    fs.writeFileSync(
      path.join(home, '.env'),
      `ANTHROPIC_API_KEY=sk-ant-canary-${kind}-0123456789\nANTHROPIC_BASE_URL=${mock.url}\n`,
    );
  opts.prepare?.(home);
  const base =
    t?.config ??
    loadConfig({ ...env, NANOCLAW_HOME: home, NANOCLAW_CONFIG_DIR: path.join(home, 'config'), TZ: 'UTC' });
  const config: Config = { ...base, ...opts.tune };
  let runtime: SandboxRuntime;
  if (typeof opts.runtime === 'string') {
    runtime = await createRuntime(config);
    await runtime.ensureRunning();
  } else runtime = opts.runtime;
  const app = await App.create(config, opts.wrapRuntime ? opts.wrapRuntime(runtime) : runtime, opts.app);
  for (const name of opts.groups ?? []) {
    const result = registerGroup(app.store, config, {
      jid: `local:${name}`,
      name,
      folder: name,
      requiresTrigger: false,
    });
    if (!result.ok) throw new Error(result.error);
  }
  await app.start();
  const client = localClient(app);
  let stopped = false;
  return {
    app,
    mock,
    home,
    config,
    local: client.local,
    post: client.post,
    postRaw: client.postRaw,
    assistantTexts: client.assistantTexts,
    reply: (chat, match, timeoutMs = 90_000) => client.waitForText(chat, match, timeoutMs, 50),
    async waitFor(chat, match, timeoutMs = 90_000) {
      await client.waitForText(chat, match, timeoutMs, 50);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.stop();
      await mock.close();
      t?.cleanup();
    },
  };
}
