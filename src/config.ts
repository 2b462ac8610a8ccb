import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readEnvFile, SECRET_KEYS } from './env-file.js';
import { logger } from './logger.js';
import { zodProblems } from './util/zod-problems.js';

export const RUNTIME_KINDS = ['docker', 'podman', 'apple', 'bwrap'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];

/** Where package.json lives, from src/ or dist/ alike. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type Config = ReturnType<typeof loadConfig>;

/**
 * A root host's sandboxes must not run as anyone's account: 61000 is above useradd's UID_MAX,
 * below systemd's DynamicUser range, nobody and subordinate ranges. `doctor` checks it is free.
 */
export const DEFAULT_SANDBOX_UID = 61000;
/** Runtimes and user namespaces parse uids as signed ints. */
const MAX_SANDBOX_UID = 2 ** 31 - 1;

const intFromString = (name: string, min: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min, `${name} must be at least ${min}`);

const settingsSchema = z.object({
  ASSISTANT_NAME: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'ASSISTANT_NAME must be one word of letters, digits, _ or -')
    .default('Andy'),
  ASSISTANT_HAS_OWN_NUMBER: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  CONTAINER_RUNTIME: z.enum(RUNTIME_KINDS).optional(),
  CONTAINER_IMAGE: z.string().min(1).default('nanoclaw-agent:latest'),
  MAX_CONCURRENT_CONTAINERS: intFromString('MAX_CONCURRENT_CONTAINERS', 1).default(5),
  CONTAINER_TIMEOUT: intFromString('CONTAINER_TIMEOUT', 1000).default(1_800_000),
  IDLE_TIMEOUT: intFromString('IDLE_TIMEOUT', 1000).default(1_800_000),
  LOCAL_CHANNEL_PORT: intFromString('LOCAL_CHANNEL_PORT', 0).default(7823),
  TZ: z.string().optional(),
  NANOCLAW_MIN_TASK_INTERVAL_MS: intFromString('NANOCLAW_MIN_TASK_INTERVAL_MS', 1000).default(60_000),
  MAX_MESSAGES_PER_RUN: intFromString('MAX_MESSAGES_PER_RUN', 1).default(100),
  ANSWER_MAX_WAIT_MS: intFromString('ANSWER_MAX_WAIT_MS', 0).default(30_000),
  WARM_AHEAD: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  WARM_AHEAD_MAX: intFromString('WARM_AHEAD_MAX', 0).default(2),
  WARM_IDLE_MS: intFromString('WARM_IDLE_MS', 1000).default(60_000),
  WARM_TASK_LEAD_MS: intFromString('WARM_TASK_LEAD_MS', 0).default(5_000),
  WARM_RECENT_DAYS: intFromString('WARM_RECENT_DAYS', 0).default(7),
  SANDBOX_UID: intFromString('SANDBOX_UID', 1)
    .refine((n) => n <= MAX_SANDBOX_UID, `SANDBOX_UID must be at most ${MAX_SANDBOX_UID}`)
    .default(DEFAULT_SANDBOX_UID),
});

export class ConfigError extends Error {}

const KNOWN_SETTINGS = [
  ...Object.keys(settingsSchema.shape),
  ...SECRET_KEYS,
  'NANOCLAW_HOME',
  'NANOCLAW_CONFIG_DIR',
  'LOG_LEVEL',
];

function editDistance(a: string, b: string): number {
  let row = [...Array(b.length + 1).keys()];
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

const warnedSettings = new Set<string>();
/** A misspelled key in .env would silently keep the default: say so, once per key. */
function warnUnknownSettings(keys: string[], envFile: string): void {
  for (const key of keys.filter((k) => !KNOWN_SETTINGS.includes(k) && !warnedSettings.has(k))) {
    warnedSettings.add(key);
    const scored = KNOWN_SETTINGS.map((name) => ({ name, distance: editDistance(key.toUpperCase(), name) }));
    const best = scored.reduce((a, b) => (b.distance < a.distance ? b : a));
    const hint = best.distance <= 3 ? `; did you mean ${best.name}?` : '';
    logger.warn({ file: envFile, setting: key }, `unknown setting ${key} in .env${hint}`);
  }
}

/** Settings from the environment, then .env without the secrets (the model proxy's alone). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const home = path.resolve(env.NANOCLAW_HOME || PROJECT_ROOT);
  const envFile = path.join(home, '.env');
  const fromFile = readEnvFile(envFile);
  warnUnknownSettings(Object.keys(fromFile), envFile);
  for (const key of SECRET_KEYS) delete fromFile[key];
  const fromEnv = Object.fromEntries(Object.entries(env).filter(([, value]) => value));
  const parsed = settingsSchema.safeParse({ ...fromFile, ...fromEnv });
  if (!parsed.success) throw new ConfigError(`Invalid settings: ${zodProblems(parsed.error)}`);
  const s = parsed.data;
  const configDir = path.resolve(
    expandHome(env.NANOCLAW_CONFIG_DIR || path.join(os.homedir(), '.config', 'nanoclaw')),
  );
  const storeDir = path.join(home, 'store');
  const dataDir = path.join(home, 'data');
  return {
    projectRoot: PROJECT_ROOT,
    home,
    configDir,
    envFile,
    storeDir,
    dbPath: path.join(storeDir, 'messages.db'),
    authDir: path.join(storeDir, 'auth'),
    groupsDir: path.join(home, 'groups'),
    dataDir,
    ipcDir: path.join(dataDir, 'ipc'),
    sessionsDir: path.join(dataDir, 'sessions'),
    proxyDir: path.join(dataDir, 'proxy'),
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
    // Safety nets: messages are routed at once, IPC files found by fs.watch.
    safetyPollMs: 5_000,
    ipcPollMs: 2_000,
    retryBaseMs: 5_000,
    maxRetries: 5,
    taskCloseDelayMs: 10_000,
    shutdownGraceMs: 10_000,
    // Shortest `interval` task: cron's finest step for users; tests lower it.
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

export function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}
