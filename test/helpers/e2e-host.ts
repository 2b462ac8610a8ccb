import fs from 'node:fs';
import path from 'node:path';
import { App, type AppOptions } from '../../src/app.js';
import type { LocalChannel } from '../../src/channels/local/local-channel.js';
import type { Config, RuntimeKind } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import { createRuntime } from '../../src/sandbox/detect.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { startMockAnthropic, type MockAnthropic, type MockScript } from '../fixtures/mock-anthropic.js';
import { localClient } from './local-client.js';
import { tempHome } from './temp-home.js';

export interface E2eHostOptions {
  runtime: RuntimeKind;
  script: MockScript;
  /** Settings as in the environment (IDLE_TIMEOUT, ...). */
  env?: Record<string, string>;
  /** Host timing the environment cannot set. */
  tune?: Partial<Pick<Config, 'retryBaseMs' | 'maxRetries' | 'shutdownGraceMs' | 'idleTimeoutMs'>>;
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
  local: LocalChannel;
  post(chat: string, text: string): Promise<Response>;
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
  const mock = await startMockAnthropic({ script: opts.script });
  const t = tempHome({
    CONTAINER_RUNTIME: opts.runtime,
    LOCAL_CHANNEL_PORT: '0',
    IDLE_TIMEOUT: '4000',
    ...opts.env,
  });
  // The sandbox user must be able to reach the group folders under the temp home.
  fs.chmodSync(t.home, 0o755);
  fs.writeFileSync(
    path.join(t.home, '.env'),
    `ANTHROPIC_API_KEY=sk-ant-canary-${opts.runtime}-0123456789\nANTHROPIC_BASE_URL=${mock.url}\n`,
  );
  opts.prepare?.(t.home);
  const config: Config = { ...t.config, ...opts.tune };
  const real = await createRuntime(config);
  await real.ensureRunning();
  const app = await App.create(config, opts.wrapRuntime ? opts.wrapRuntime(real) : real, opts.app);
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
    home: t.home,
    local: client.local,
    post: client.post,
    assistantTexts: client.assistantTexts,
    reply: (chat, match, timeoutMs = 90_000) => client.waitForText(chat, match, timeoutMs),
    async waitFor(chat, match, timeoutMs = 90_000) {
      await client.waitForText(chat, match, timeoutMs);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.stop();
      await mock.close();
      t.cleanup();
    },
  };
}
