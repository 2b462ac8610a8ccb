import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import type { RegisteredGroup } from '../../src/types.js';

/**
 * A temp directory the sandbox user (SANDBOX_UID) can traverse: bwrap resolves bind sources with that
 * uid, and mkdtemp's 0700 would lock it out.
 */
export function makeTempDir(prefix = 'nanoclaw-sandbox-'): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A full Config rooted at `home` (NANOCLAW_HOME = the project root unless told otherwise). */
export function testConfig(home: string, overrides: Partial<Config> = {}): Config {
  const config = loadConfig({
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    LOCAL_CHANNEL_PORT: '0',
    TZ: 'UTC',
  });
  return { ...config, projectRoot: home, instanceId: 'test', ...overrides };
}

/** A registered group; main needs no trigger unless told otherwise. */
export function testGroup(folder: string, overrides: Partial<RegisteredGroup> = {}): RegisteredGroup {
  return {
    jid: `local:${folder}`,
    name: folder,
    folder,
    trigger: '@Andy',
    requiresTrigger: !overrides.isMain,
    isMain: false,
    addedAt: new Date(0).toISOString(),
    ...overrides,
  };
}
