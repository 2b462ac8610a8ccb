import fs from 'node:fs';
import path from 'node:path';
import type { LocalChannel } from '../../src/channels/local/local-channel.js';
import { App, type AppOptions } from '../../src/app.js';
import type { Config, RuntimeKind } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import { createRuntime } from '../../src/sandbox/detect.js';
import { startMockAnthropic, type MockAnthropic, type MockScript } from '../fixtures/mock-anthropic.js';
import { localClient } from './local-client.js';
import { tempHome } from './temp-home.js';

export interface ReliabilityHost {
  app: App;
  mock: MockAnthropic;
  home: string;
  local: LocalChannel;
  post(chat: string, text: string): Promise<Response>;
  /** Assistant messages of the chat as stored, oldest first. */
  assistantTexts(chat: string): string[];
  waitFor(chat: string, match: (text: string) => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ReliabilityHostOptions {
  runtime: RuntimeKind;
  script: MockScript;
  env?: Record<string, string>;
  /** Host timing the environment cannot set (retry back-off, retry count). */
  tune?: Partial<Pick<Config, 'retryBaseMs' | 'maxRetries' | 'shutdownGraceMs' | 'idleTimeoutMs'>>;
  app?: AppOptions;
  /** Extra local chats registered as groups that need no trigger. */
  groups?: string[];
  /** Runs before the host starts (e.g. writes group-policy.json into home/config). */
  prepare?(home: string): void;
}

/**
 * The real host in-process (store, queue, proxies, channels, sandbox runtime, agent image) in a
 * temp NANOCLAW_HOME, its model upstream a scripted mock on loopback.
 */
export async function startReliabilityHost(opts: ReliabilityHostOptions): Promise<ReliabilityHost> {
  const mock = await startMockAnthropic({ script: opts.script });
  const t = tempHome({
    CONTAINER_RUNTIME: opts.runtime,
    LOCAL_CHANNEL_PORT: '0',
    IDLE_TIMEOUT: '4000',
    ...opts.env,
  });
  fs.chmodSync(t.home, 0o755);
  fs.writeFileSync(
    path.join(t.home, '.env'),
    `ANTHROPIC_API_KEY=sk-ant-reliability-0123456789\nANTHROPIC_BASE_URL=${mock.url}\n`,
  );
  opts.prepare?.(t.home);
  const config: Config = { ...t.config, ...opts.tune };
  const runtime = await createRuntime(config);
  await runtime.ensureRunning();
  const app = await App.create(config, runtime, opts.app);
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
