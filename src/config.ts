import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readEnvFile, SECRET_KEYS } from './env-file.js';

export const RUNTIME_KINDS = ['docker', 'podman', 'apple', 'bwrap'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];

/** The project directory (where package.json lives), from src/ or dist/ alike. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Config {
  projectRoot: string;
  home: string;
  configDir: string;
  envFile: string;
  storeDir: string;
  dbPath: string;
  authDir: string;
  groupsDir: string;
  dataDir: string;
  ipcDir: string;
  sessionsDir: string;
  proxyDir: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
  containerRuntime: RuntimeKind | undefined;
  containerImage: string;
  maxConcurrentContainers: number;
  containerTimeoutMs: number;
  idleTimeoutMs: number;
  localChannelPort: number;
  timezone: string;
  /** Distinguishes this installation's sandboxes from any other's on the same machine. */
  instanceId: string;
  /** Safety-net poll of the message store; inbound messages are routed at once without it. */
  safetyPollMs: number;
  /** Safety-net poll of the IPC directories, behind fs.watch. */
  ipcPollMs: number;
  /** Delay before the n-th retry of a failed run is 5 s × 2^(n-1). */
  retryBaseMs: number;
  maxRetries: number;
  /** Task sandboxes are closed this long after their first result. */
  taskCloseDelayMs: number;
  /** Grace period for active sandboxes on shutdown. */
  shutdownGraceMs: number;
  /**
   * Shortest interval a new `interval` task may have. One minute for users (cron's finest step);
   * tests lower it with NANOCLAW_MIN_TASK_INTERVAL_MS to watch repeated runs in seconds.
   */
  minTaskIntervalMs: number;
  /** The uid (and gid) sandboxes run as when the host runs as root; see DEFAULT_SANDBOX_UID. */
  sandboxUid: number;
}

/**
 * A root host's sandboxes must not run as anyone's account: files they write, processes they
 * start and sockets they may reach would be that person's. 61000 is above useradd's UID_MAX
 * (60000 in login.defs, so no ordinary account gets it), below systemd's DynamicUser range
 * (61184-65519) and nobody (65534), and far below the subordinate ranges rootless containers map
 * (100000 and up). `doctor` checks that no account has it on this machine.
 */
export const DEFAULT_SANDBOX_UID = 61000;
/** uid_t is unsigned 32-bit, but runtimes and user namespaces parse uids as signed ints. */
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
  ASSISTANT_HAS_OWN_NUMBER: z.enum(['true', 'false', '1', '0']).default('false'),
  CONTAINER_RUNTIME: z.enum(RUNTIME_KINDS).optional(),
  CONTAINER_IMAGE: z.string().min(1).default('nanoclaw-agent:latest'),
  MAX_CONCURRENT_CONTAINERS: intFromString('MAX_CONCURRENT_CONTAINERS', 1).default(5),
  CONTAINER_TIMEOUT: intFromString('CONTAINER_TIMEOUT', 1000).default(1_800_000),
  IDLE_TIMEOUT: intFromString('IDLE_TIMEOUT', 1000).default(1_800_000),
  LOCAL_CHANNEL_PORT: intFromString('LOCAL_CHANNEL_PORT', 0).default(7823),
  TZ: z.string().optional(),
  NANOCLAW_MIN_TASK_INTERVAL_MS: intFromString('NANOCLAW_MIN_TASK_INTERVAL_MS', 1000).default(60_000),
  SANDBOX_UID: intFromString('SANDBOX_UID', 1)
    .refine((n) => n <= MAX_SANDBOX_UID, `SANDBOX_UID must be at most ${MAX_SANDBOX_UID}`)
    .default(DEFAULT_SANDBOX_UID),
});

export class ConfigError extends Error {}

/**
 * Builds the one config object. Non-secret settings come from the environment, then from
 * $NANOCLAW_HOME/.env; the secret keys in .env are skipped here (only the model proxy reads them).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const home = path.resolve(env.NANOCLAW_HOME || PROJECT_ROOT);
  const envFile = path.join(home, '.env');
  const fromFile = readEnvFile(envFile);
  for (const key of SECRET_KEYS) delete fromFile[key];
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [key, value] of Object.entries(env))
    if (value !== undefined && value !== '') merged[key] = value;

  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid settings: ${problems}`);
  }
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
    assistantHasOwnNumber: s.ASSISTANT_HAS_OWN_NUMBER === 'true' || s.ASSISTANT_HAS_OWN_NUMBER === '1',
    containerRuntime: s.CONTAINER_RUNTIME,
    containerImage: s.CONTAINER_IMAGE,
    maxConcurrentContainers: s.MAX_CONCURRENT_CONTAINERS,
    containerTimeoutMs: s.CONTAINER_TIMEOUT,
    idleTimeoutMs: s.IDLE_TIMEOUT,
    localChannelPort: s.LOCAL_CHANNEL_PORT,
    timezone: s.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone,
    instanceId: crypto.createHash('sha256').update(home).digest('hex').slice(0, 12),
    safetyPollMs: 5_000,
    ipcPollMs: 2_000,
    retryBaseMs: 5_000,
    maxRetries: 5,
    taskCloseDelayMs: 10_000,
    shutdownGraceMs: 10_000,
    minTaskIntervalMs: s.NANOCLAW_MIN_TASK_INTERVAL_MS,
    sandboxUid: s.SANDBOX_UID,
  };
}

export function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}

/** Folder names become host paths and container names: keep them to a safe alphabet. */
export const FOLDER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** `global` is the shared memory folder and `errors` holds quarantined IPC files: never group folders. */
const RESERVED_FOLDERS = new Set(['global', 'errors']);

export function isValidFolder(folder: string): boolean {
  return FOLDER_PATTERN.test(folder) && folder.length <= 64 && !RESERVED_FOLDERS.has(folder.toLowerCase());
}
