import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readEnvFile, SECRET_KEYS } from './env-file.js';
import { logger } from './logger.js';

export const RUNTIME_KINDS = ['docker', 'podman', 'apple', 'bwrap'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_SANDBOX_UID = 61000;
export class ConfigError extends Error {}
export type Config = ReturnType<typeof loadConfig>;

// At most a signed 32-bit int: what timers, runtimes and user namespaces take.
const int = (min: number, def: number, max = 2 ** 31 - 1) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min, `must be at least ${min}`)
    .refine((n) => n <= max, `must be at most ${max}`)
    .default(def);
const bool = (def: boolean) => z.stringbool().default(def);

const schema = z.object({
  ASSISTANT_NAME: z
    .string()
    .regex(/^[A-Za-z0-9][\w-]*$/, 'must be one word')
    .default('Andy'),
  ASSISTANT_HAS_OWN_NUMBER: bool(false),
  CONTAINER_RUNTIME: z.enum(RUNTIME_KINDS).optional(),
  CONTAINER_IMAGE: z.string().min(1).default('nanoclaw-agent:latest'),
  MAX_CONCURRENT_CONTAINERS: int(1, 5),
  CONTAINER_TIMEOUT: int(1000, 1_800_000),
  IDLE_TIMEOUT: int(1000, 1_800_000),
  LOCAL_CHANNEL_PORT: int(0, 7823, 65535),
  TZ: z.string().optional(),
  NANOCLAW_MIN_TASK_INTERVAL_MS: int(1000, 60_000),
  MAX_MESSAGES_PER_RUN: int(1, 100),
  ANSWER_MAX_WAIT_MS: int(0, 30_000),
  WARM_AHEAD: bool(true),
  WARM_AHEAD_MAX: int(0, 2),
  WARM_IDLE_MS: int(1000, 60_000),
  WARM_TASK_LEAD_MS: int(0, 5_000),
  WARM_RECENT_DAYS: int(0, 7),
  SANDBOX_UID: int(1, DEFAULT_SANDBOX_UID),
});

const KNOWN = [
  ...Object.keys(schema.shape),
  ...SECRET_KEYS,
  'NANOCLAW_HOME',
  'NANOCLAW_CONFIG_DIR',
  'LOG_LEVEL',
];
const warned = new Set<string>();

function editDistance(a: string, b: string) {
  let row = [...Array(b.length + 1).keys()];
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + +(a[i - 1] !== b[j - 1]));
    row = next;
  }
  return row[b.length]!;
}

/** Settings from the environment, then .env without the secrets (the model proxy's alone). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const home = path.resolve(env.NANOCLAW_HOME || PROJECT_ROOT);
  const envFile = path.join(home, '.env');
  const fromFile = readEnvFile(envFile);
  for (const key of Object.keys(fromFile).filter((k) => !KNOWN.includes(k) && !warned.has(k))) {
    warned.add(key);
    const [d, best] = KNOWN.map((n) => [editDistance(key.toUpperCase(), n), n] as const).sort(
      (a, b) => a[0] - b[0],
    )[0]!;
    logger.warn(`unknown setting ${key} in .env${d <= 3 ? `; did you mean ${best}?` : ''}`);
  }
  for (const key of SECRET_KEYS) delete fromFile[key];
  const parsed = schema.safeParse({
    ...fromFile,
    ...Object.fromEntries(Object.entries(env).filter(([, v]) => v)),
  });
  if (!parsed.success)
    throw new ConfigError(
      `Invalid settings: ${parsed.error.issues.map((i) => `${String(i.path[0])} ${i.message}`).join('; ')}`,
    );
  const s = parsed.data;
  const [storeDir, dataDir] = [path.join(home, 'store'), path.join(home, 'data')];
  const data = (name: string) => path.join(dataDir, name);
  return {
    projectRoot: PROJECT_ROOT,
    home,
    configDir: path.resolve(expandHome(env.NANOCLAW_CONFIG_DIR || '~/.config/nanoclaw')),
    envFile,
    storeDir,
    dbPath: path.join(storeDir, 'messages.db'),
    authDir: path.join(storeDir, 'auth'),
    groupsDir: path.join(home, 'groups'),
    dataDir,
    filesDir: data('files'),
    tmpDir: data('tmp'),
    ipcDir: data('ipc'),
    sessionsDir: data('sessions'),
    proxyDir: data('proxy'),
    assistantName: s.ASSISTANT_NAME,
    assistantHasOwnNumber: s.ASSISTANT_HAS_OWN_NUMBER,
    containerRuntime: s.CONTAINER_RUNTIME,
    containerImage: s.CONTAINER_IMAGE,
    maxConcurrentContainers: s.MAX_CONCURRENT_CONTAINERS,
    containerTimeoutMs: s.CONTAINER_TIMEOUT,
    idleTimeoutMs: s.IDLE_TIMEOUT,
    localChannelPort: s.LOCAL_CHANNEL_PORT,
    timezone: s.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone,
    instanceId: crypto.createHash('sha256').update(home).digest('hex').slice(0, 12),
    ...{ safetyPollMs: 5_000, ipcPollMs: 2_000, retryBaseMs: 5_000, maxRetries: 5 },
    ...{ taskCloseDelayMs: 10_000, shutdownGraceMs: 10_000 },
    minTaskIntervalMs: s.NANOCLAW_MIN_TASK_INTERVAL_MS,
    sandboxUid: s.SANDBOX_UID,
    maxMessagesPerRun: s.MAX_MESSAGES_PER_RUN,
    answerMaxWaitMs: s.ANSWER_MAX_WAIT_MS,
    warmAhead: {
      enabled: s.WARM_AHEAD,
      max: s.WARM_AHEAD_MAX,
      idleMs: s.WARM_IDLE_MS,
      taskLeadMs: s.WARM_TASK_LEAD_MS,
      recentDays: s.WARM_RECENT_DAYS,
    },
  };
}

export function expandHome(p: string) {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}
