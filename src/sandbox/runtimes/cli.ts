import { execFile } from 'node:child_process';

/** What a runtime CLI needs to find its daemon; nothing else of the host's environment. */
const PASSED_ENV = (
  'PATH HOME LANG XDG_RUNTIME_DIR CONTAINER_HOST CONTAINERS_CONF ' +
  'DOCKER_HOST DOCKER_CONFIG DOCKER_CONTEXT DOCKER_CERT_PATH DOCKER_TLS_VERIFY'
).split(' ');

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function cliEnv(): Record<string, string> {
  const passed = PASSED_ENV.flatMap((key) => (process.env[key] ? [[key, process.env[key]]] : []));
  return { PATH: DEFAULT_PATH, ...Object.fromEntries(passed) };
}

/** Never throws; `code` is null when killed. */
export function runCommand(
  bin: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }> {
  const options = {
    env: cliEnv(),
    cwd: '/',
    timeout: timeoutMs,
    killSignal: 'SIGKILL' as const,
    maxBuffer: Infinity,
  };
  return new Promise((resolve) => {
    execFile(bin, args, options, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, missing: err?.code === 'ENOENT' });
    }).stdin?.end();
  });
}
