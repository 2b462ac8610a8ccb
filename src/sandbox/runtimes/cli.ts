import { spawn } from 'node:child_process';

export interface CommandResult {
  /** null when the command could not be started or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the binary could not be started (e.g. ENOENT: not installed). */
  startError?: NodeJS.ErrnoException;
  timedOut: boolean;
}

/** Variables a runtime CLI may need to find its daemon; nothing else of the host's leaks through. */
const PASSED_ENV = [
  'PATH',
  'HOME',
  'LANG',
  'XDG_RUNTIME_DIR',
  'DOCKER_HOST',
  'DOCKER_CONFIG',
  'DOCKER_CONTEXT',
  'DOCKER_CERT_PATH',
  'DOCKER_TLS_VERIFY',
  'CONTAINER_HOST',
  'CONTAINERS_CONF',
];

export function cliEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of PASSED_ENV) {
    const value = process.env[key];
    if (value) env[key] = value;
  }
  if (!env.PATH) env.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
}

/** Runs a short CLI command to completion; never throws. */
export function runCommand(
  bin: string,
  args: string[],
  options: { timeoutMs?: number; uid?: number; gid?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const done = (result: Omit<CommandResult, 'stdout' | 'stderr' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, stdout, stderr, timedOut });
    };
    const child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cliEnv(),
      cwd: '/',
      uid: options.uid,
      gid: options.gid,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => done({ code: null, startError: err }));
    child.on('close', (code) => done({ code }));
  });
}
