import fs from 'node:fs';
import path from 'node:path';
import type { LocalChannel } from '../../src/channels/local/local-channel.js';
import { App } from '../../src/app.js';
import { createRuntime } from '../../src/sandbox/detect.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import type { RuntimeKind } from '../../src/config.js';
import { startMockAnthropic, type MockAnthropic, type MockScript } from '../fixtures/mock-anthropic.js';
import { localClient } from './local-client.js';
import { tempHome } from './temp-home.js';

export interface E2eHostOptions {
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
  assistantTexts(chat: string): string[];
  stop(): Promise<void>;
}

/**
 * The real host (store, queue, channels, proxies, sandbox runtime, agent image) in a temp
 * NANOCLAW_HOME, with the model proxy's upstream pointed at a scripted mock on loopback.
 */
export async function startE2eHost(
  runtime: RuntimeKind,
  script: MockScript,
  env: Record<string, string> = {},
  prepare?: (home: string) => void,
  options: E2eHostOptions = {},
): Promise<E2eHost> {
  const mock = await startMockAnthropic({ script });
  const t = tempHome({ CONTAINER_RUNTIME: runtime, LOCAL_CHANNEL_PORT: '0', IDLE_TIMEOUT: '4000', ...env });
  // The sandbox user (SANDBOX_UID) must be able to reach the group folders under the temp home.
  fs.chmodSync(t.home, 0o755);
  fs.writeFileSync(
    path.join(t.home, '.env'),
    `ANTHROPIC_API_KEY=sk-ant-canary-${runtime}-0123456789\nANTHROPIC_BASE_URL=${mock.url}\n`,
  );
  prepare?.(t.home);
  const real = await createRuntime(t.config);
  await real.ensureRunning();
  const sandboxes = options.wrapRuntime ? options.wrapRuntime(real) : real;
  const app = await App.create(t.config, sandboxes);
  await app.start();
  const client = localClient(app);

  return {
    app,
    mock,
    home: t.home,
    local: client.local,
    post: client.post,
    assistantTexts: client.assistantTexts,
    reply: (chat, match, timeoutMs = 90_000) => client.waitForText(chat, match, timeoutMs),
    async stop() {
      await app.stop();
      await mock.close();
      t.cleanup();
    },
  };
}
