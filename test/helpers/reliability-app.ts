import fs from 'node:fs';
import path from 'node:path';
import { App, type AppParts } from '../../src/app.js';
import { LocalChannel } from '../../src/channels/local/local-channel.js';
import { loadConfig, type Config } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import type { AgentRunner } from '../../src/types.js';
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
  runner?: AgentRunner;
  runtime?: AppParts['runtime'];
  /** An existing home (a restart), else a fresh one. */
  home?: string;
  groups?: string[];
  tune?: Partial<Config>;
}

/**
 * The real App (store, queue, loop, IPC watcher, outbound, local channel on a random loopback
 * port) with an in-process runner: for reliability checks that need no sandbox.
 */
export async function startUnitApp(opts: UnitAppOptions): Promise<UnitApp> {
  const t = opts.home ? undefined : tempHome({ LOCAL_CHANNEL_PORT: '0' });
  const base = t?.config ?? configFor(opts.home!);
  const config: Config = { ...base, ...opts.tune };
  const app = new App(config, {
    ...(opts.runner ? { runner: opts.runner } : {}),
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
    channels: (callbacks, self) => [
      new LocalChannel({
        port: 0,
        tokenFile: path.join(config.dataDir, 'local-channel.token'),
        callbacks,
        assistantName: config.assistantName,
        history: (jid, after) => self.store.messages.history(jid, after),
        isRegistered: (jid) => self.store.groups.byJid(jid) !== undefined,
        chats: () => [],
      }),
    ],
  });
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
