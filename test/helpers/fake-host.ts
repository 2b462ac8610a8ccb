import fs from 'node:fs';
import path from 'node:path';
import { App } from '../../src/app.js';
import { LocalChannel } from '../../src/channels/local/local-channel.js';
import { loadConfig, type Config } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { FakeRuntime } from './fake-runtime.js';
import { localClient } from './local-client.js';
import { tempHome } from './temp-home.js';

export interface UnitApp {
  app: App;
  home: string;
  config: Config;
  local: LocalChannel;
  post(chat: string, body: string | Buffer, contentType?: string): Promise<Response>;
  assistantTexts(chat: string): string[];
  waitFor(chat: string, match: (text: string) => boolean, timeoutMs?: number): Promise<void>;
  /** Stops the host and removes the temp home. */
  stop(): Promise<void>;
}

export interface UnitAppOptions {
  /** The sandbox runtime; an in-process fake by default. */
  runtime?: SandboxRuntime;
  /** An existing home (a restart), else a fresh one. */
  home?: string;
  groups?: string[];
  tune?: Partial<Config>;
}

/**
 * The real App (store, queue, loop, sandbox runner, IPC watcher, outbound, local channel on a
 * random loopback port) with an in-process sandbox runtime: for checks that need no real sandbox.
 */
export async function startUnitApp(opts: UnitAppOptions): Promise<UnitApp> {
  const t = opts.home ? undefined : tempHome({ LOCAL_CHANNEL_PORT: '0' });
  const base = t?.config ?? configFor(opts.home!);
  const config: Config = { ...base, ...opts.tune };
  const app = new App(config, opts.runtime ?? new FakeRuntime());
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
  return {
    app,
    home: config.home,
    config,
    local: client.local,
    post: client.postRaw,
    assistantTexts: client.assistantTexts,
    async waitFor(chat, match, timeoutMs = 10_000) {
      await client.waitForText(chat, match, timeoutMs, 20);
    },
    async stop() {
      await app.stop();
      if (t) t.cleanup();
    },
  };
}

/** The config tempHome() builds, for an existing home: a restart of the same installation. */
function configFor(home: string): Config {
  if (!fs.existsSync(home)) throw new Error(`no such home: ${home}`);
  return loadConfig({
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    TZ: 'UTC',
    LOCAL_CHANNEL_PORT: '0',
  });
}
