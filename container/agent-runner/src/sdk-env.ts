import type { ProxyForwarders } from './forwarders.js';

/** Built from a clean base, so nothing the runner inherited reaches the agent's shell. */
export function buildSdkEnv(
  forwarders: Pick<ProxyForwarders, 'api' | 'egress'>,
  base: NodeJS.ProcessEnv = process.env,
  uid: number = process.getuid?.() ?? -1,
): Record<string, string> {
  const home = base.HOME || '/home/node';
  const proxy = forwarders.egress && `http://127.0.0.1:${forwarders.egress.port}`;
  return {
    HOME: home,
    // Sessions and Claude Code's config live in the group's session dir; HOME itself may be a tmpfs.
    CLAUDE_CONFIG_DIR: `${home}/.claude`,
    PATH: base.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: base.LANG || 'C.UTF-8',
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${forwarders.api.port}`,
    // Not a secret: the model proxy drops whatever credential arrives and injects the real one.
    ANTHROPIC_API_KEY: 'sk-ant-nanoclaw-placeholder',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS: '1',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    ...(base.TZ ? { TZ: base.TZ } : {}),
    ...(base.TMPDIR ? { TMPDIR: base.TMPDIR } : {}),
    // Claude Code refuses bypassPermissions as root unless told it is inside a sandbox.
    ...(uid === 0 ? { IS_SANDBOX: '1' } : {}),
    ...(proxy ? { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy } : {}),
  };
}
