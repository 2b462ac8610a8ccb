import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isStale } from './build-freshness.js';
import Database from 'better-sqlite3';
import { vi } from 'vitest';
import { PROJECT_ROOT } from '../../src/config.js';

/** One message as the local channel's API returns it. */
export interface ApiMessage {
  id: string;
  sender: string;
  text: string;
  timestamp: string;
  fromAssistant: boolean;
}

export interface HostProcess {
  proc: ChildProcess;
  port: number;
  token: string;
  /** Everything the host logged so far (pino JSON lines on stderr). */
  log(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  post(chat: string, text: string): Promise<Response>;
  messages(chat: string): Promise<ApiMessage[]>;
  assistantTexts(chat: string): Promise<string[]>;
  /** Waits for an assistant message matching `match`; returns all assistant texts at that moment. */
  waitForReply(chat: string, match: (text: string) => boolean, timeoutMs?: number): Promise<string[]>;
}

const MAIN_JS = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

/** The host runs from dist/ here, as users run it: rebuilt when a source file is newer. */
export function ensureHostBuild(): void {
  if (!isStale(MAIN_JS, path.join(PROJECT_ROOT, 'src'))) return;
  const build = spawnSync('npm', ['run', 'build'], { cwd: PROJECT_ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
}

/** A NANOCLAW_HOME with the model pointed at a mock; reachable by the sandbox user. */
export function makeHostHome(mockUrl: string): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-rel-'));
  fs.chmodSync(home, 0o755);
  fs.writeFileSync(
    path.join(home, '.env'),
    `ANTHROPIC_API_KEY=sk-ant-reliability-0123456789\nANTHROPIC_BASE_URL=${mockUrl}\n`,
  );
  return home;
}

/** Only what the host needs: no test-runner variables (they would silence its log). */
function hostEnv(home: string, extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    LOCAL_CHANNEL_PORT: '0',
    LOG_LEVEL: 'info',
    TZ: 'UTC',
    // Spawn counts and timings here assume no sandbox starts ahead; warm-ahead has its own tests.
    WARM_AHEAD: 'false',
    ...extra,
  };
}

/** `node dist/cli/main.js start` as a child process; resolves once it says it is ready. */
export async function startHostProcess(
  home: string,
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<HostProcess> {
  const proc = spawn(process.execPath, [MAIN_JS, 'start'], {
    cwd: home,
    env: hostEnv(home, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = await Promise.race([
    vi.waitFor(
      () => {
        // Not a terminal: the link comes without its token, which is read from its file.
        const m = /Local chat: http:\/\/127\.0\.0\.1:(\d+)\/ /.exec(stdout);
        if (!m) throw new Error('host not ready yet');
        const token = fs.readFileSync(path.join(home, 'data', 'local-channel.token'), 'utf8').trim();
        return { port: Number(m[1]), token };
      },
      { timeout: readyTimeoutMs, interval: 100 },
    ),
    exited.then(({ code, signal }) => {
      throw new Error(`host exited during start-up (${code ?? signal}):\n${stderr}`);
    }),
  ]);
  const { port, token } = ready;
  const base = `http://127.0.0.1:${port}/api/chats`;
  const headers = { authorization: `Bearer ${token}` };
  const messages = async (chat: string): Promise<ApiMessage[]> => {
    const res = await fetch(`${base}/${encodeURIComponent(chat)}/messages`, { headers });
    if (!res.ok) throw new Error(`GET messages: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { messages: ApiMessage[] }).messages;
  };
  const assistantTexts = async (chat: string) =>
    (await messages(chat)).filter((m) => m.fromAssistant).map((m) => m.text);
  return {
    proc,
    port,
    token,
    log: () => stderr,
    exited,
    post: (chat, text) =>
      fetch(`${base}/${encodeURIComponent(chat)}/messages`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
      }),
    messages,
    assistantTexts,
    async waitForReply(chat, match, timeoutMs = 90_000) {
      let texts: string[] = [];
      await vi.waitFor(
        async () => {
          texts = await assistantTexts(chat);
          if (!texts.some(match)) throw new Error(`no matching reply in ${chat}: ${JSON.stringify(texts)}`);
        },
        { timeout: timeoutMs, interval: 200 },
      );
      return texts;
    },
  };
}

/** Stops a host still running (tests that fail half-way); never throws. */
export async function killHost(host: HostProcess | undefined): Promise<void> {
  if (!host || host.proc.exitCode !== null || host.proc.signalCode !== null) return;
  host.proc.kill('SIGTERM');
  const late = setTimeout(() => host.proc.kill('SIGKILL'), 20_000);
  await host.exited;
  clearTimeout(late);
}

/** Reads the host's database directly (read-only; the host may still be running). */
export function withDb<T>(home: string, read: (db: Database.Database) => T): T {
  const db = new Database(path.join(home, 'store', 'messages.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

export function routerState(home: string, key: string): string | undefined {
  return withDb(home, (db) => {
    const row = db.prepare('SELECT value FROM router_state WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  });
}

/** Pino lines of the host's log with this `msg`. */
export function logLines(log: string, msg: string): Array<Record<string, unknown>> {
  return log
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((entry) => entry.msg === msg);
}
