import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../src/config.js';
import type { RegisteredGroup } from '../../src/types.js';

/**
 * A temp directory the sandbox user (uid 1000) can traverse: bwrap resolves bind sources with that
 * uid, and mkdtemp's 0700 would lock it out.
 */
export function makeTempDir(prefix = 'nanoclaw-sandbox-'): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A full Config rooted at `home` (NANOCLAW_HOME = the project root unless told otherwise). */
export function testConfig(home: string, overrides: Partial<Config> = {}): Config {
  const storeDir = path.join(home, 'store');
  const dataDir = path.join(home, 'data');
  return {
    projectRoot: home,
    home,
    configDir: path.join(home, 'config'),
    envFile: path.join(home, '.env'),
    storeDir,
    dbPath: path.join(storeDir, 'messages.db'),
    authDir: path.join(storeDir, 'auth'),
    groupsDir: path.join(home, 'groups'),
    dataDir,
    ipcDir: path.join(dataDir, 'ipc'),
    sessionsDir: path.join(dataDir, 'sessions'),
    proxyDir: path.join(dataDir, 'proxy'),
    assistantName: 'Andy',
    assistantHasOwnNumber: false,
    containerRuntime: undefined,
    containerImage: 'nanoclaw-agent:latest',
    maxConcurrentContainers: 5,
    containerTimeoutMs: 1_800_000,
    idleTimeoutMs: 1_800_000,
    localChannelPort: 0,
    timezone: 'UTC',
    instanceId: 'test',
    safetyPollMs: 5_000,
    ipcPollMs: 2_000,
    retryBaseMs: 5_000,
    maxRetries: 5,
    taskCloseDelayMs: 10_000,
    shutdownGraceMs: 10_000,
    minTaskIntervalMs: 60_000,
    ...overrides,
  };
}

export function testGroup(folder: string, overrides: Partial<RegisteredGroup> = {}): RegisteredGroup {
  return {
    jid: `local:${folder}`,
    name: folder,
    folder,
    trigger: '@Andy',
    requiresTrigger: true,
    isMain: false,
    addedAt: new Date(0).toISOString(),
    ...overrides,
  };
}
