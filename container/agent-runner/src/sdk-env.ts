import type { ProxyForwarders } from './forwarders.js';

/** Not a secret: the model proxy drops whatever credential arrives and injects the real one. */
export const PLACEHOLDER_API_KEY = 'sk-ant-nanoclaw-placeholder';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The SDK's environment, built from a clean base rather than process.env, so that nothing the
 * runner happened to inherit reaches the agent's shell.
 */
export function buildSdkEnv(
  forwarders: Pick<ProxyForwarders, 'api' | 'egress'>,
  base: NodeJS.ProcessEnv = process.env,
  uid: number = process.getuid?.() ?? -1,
): Record<string, string> {
  const home = base.HOME || '/home/node';
  const env: Record<string, string> = {
    HOME: home,
    // Sessions and Claude Code's own config live in the group's session dir, so HOME itself
    // does not have to be writable or persistent.
    CLAUDE_CONFIG_DIR: `${home}/.claude`,
    PATH: base.PATH || DEFAULT_PATH,
    LANG: base.LANG || 'C.UTF-8',
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${forwarders.api.port}`,
    ANTHROPIC_API_KEY: PLACEHOLDER_API_KEY,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS: '1',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
  };
  if (base.TZ) env.TZ = base.TZ;
  if (base.TMPDIR) env.TMPDIR = base.TMPDIR;
  // Claude Code refuses bypassPermissions as root unless told it is inside a sandbox.
  if (uid === 0) env.IS_SANDBOX = '1';
  if (forwarders.egress) {
    const proxy = `http://127.0.0.1:${forwarders.egress.port}`;
    env.HTTP_PROXY = proxy;
    env.HTTPS_PROXY = proxy;
    env.http_proxy = proxy;
    env.https_proxy = proxy;
  }
  return env;
}
