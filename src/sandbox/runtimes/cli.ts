import { execFile } from 'node:child_process';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What a runtime CLI needs to find its daemon; nothing else of the host's environment. */
export function cliEnv(): Record<string, string> {
  const keys =
    'PATH HOME LANG XDG_RUNTIME_DIR CONTAINER_HOST CONTAINERS_CONF DOCKER_HOST DOCKER_CONFIG DOCKER_CONTEXT DOCKER_CERT_PATH DOCKER_TLS_VERIFY';
  const passed = keys.split(' ').flatMap((key) => (process.env[key] ? [[key, process.env[key]]] : []));
  return { PATH: DEFAULT_PATH, ...Object.fromEntries(passed) };
}

export function runCommand(bin: string, args: string[], timeout = 15_000) {
  const options = { env: cliEnv(), cwd: '/', timeout, killSignal: 'SIGKILL' as const, maxBuffer: Infinity };
  return new Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }>((resolve) => {
    execFile(bin, args, options, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, missing: err?.code === 'ENOENT' });
    }).stdin?.end();
  });
}
