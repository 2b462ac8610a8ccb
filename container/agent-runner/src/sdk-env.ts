import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { log } from './output.js';

// The sandbox has only loopback; the SDK speaks TCP, the host's proxies listen on unix sockets.
async function forward(socketPath: string) {
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    const drop = () => {
      clients.delete(client);
      client.destroy();
      upstream.destroy();
    };
    clients.add(client);
    client.on('error', drop).on('close', drop);
    upstream.on('close', drop).on('error', (err) => {
      log('proxy socket unreachable', { socketPath, error: err.message });
      drop();
    });
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((done) => {
        for (const client of clients) client.destroy();
        server.close(() => done());
      }),
  };
}

/** The SDK's environment, built clean: nothing the runner inherited reaches the agent's shell. */
export async function startSdkEnv(proxyDir: string) {
  const apiSocket = path.join(proxyDir, 'api.sock');
  const egressSocket = path.join(proxyDir, 'egress.sock');
  // Always: without it the SDK would try Anthropic's own hosts.
  if (!fs.existsSync(apiSocket)) log('model proxy socket missing', { apiSocket });
  const api = await forward(apiSocket);
  const egress = fs.existsSync(egressSocket) ? await forward(egressSocket) : undefined;
  const { PATH, LANG, TZ, TMPDIR } = process.env;
  const HOME = process.env.HOME || '/home/node';
  const proxy = egress?.url;
  const env: Record<string, string> = {
    HOME,
    // The group's session dir; HOME itself may be a tmpfs.
    CLAUDE_CONFIG_DIR: `${HOME}/.claude`,
    PATH: PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: LANG || 'C.UTF-8',
    ANTHROPIC_BASE_URL: api.url,
    // Not a secret: the model proxy replaces it with the real one.
    ANTHROPIC_API_KEY: 'sk-ant-nanoclaw-placeholder',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS: '1',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    ...(TZ && { TZ }),
    ...(TMPDIR && { TMPDIR }),
    // Claude Code refuses bypassPermissions as root outside a sandbox.
    ...(process.getuid?.() === 0 && { IS_SANDBOX: '1' }),
    ...(proxy && { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy }),
  };
  return { env, close: async () => void (await Promise.all([api.close(), egress?.close()])) };
}
