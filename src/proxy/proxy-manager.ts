import { once } from 'node:events';
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { isValidFolder } from '../contract/ipc.js';
import type { Failure, PermanentCause } from '../failure-notice.js';
import { logger } from '../logger.js';
import { createEgressProxyServer, type EgressProxyDeps } from './egress-proxy.js';
import { createModelProxyServer, credentialsId, type ModelProxyDeps } from './model-proxy.js';

export type ProxyDeps = ModelProxyDeps & EgressProxyDeps & { proxyDir: string; sandboxUid?: number };
type Close = () => Promise<void>;

// Each group's sockets are mounted in its sandbox alone: the socket names the group.
export class ProxyManager {
  private readonly groups = new Map<string, Promise<Close[]>>();
  private readonly failures = new Map<string, { failure: Failure; at: number }>();
  private refused?: string; // credentialsId the model refused

  constructor(private readonly deps: ProxyDeps) {
    this.deps = {
      ...deps,
      envFile: deps.envFile ?? path.join(deps.proxyDir, '../../.env'),
      onOutcome: (folder, failure, credentials) => {
        if (failure?.cause === 'invalid-credentials') this.refused = credentials;
        else if (!failure && credentials === this.refused) this.refused = undefined;
        if (failure) this.failures.set(folder, { failure, at: Date.now() });
        else this.failures.delete(folder);
      },
    };
  }

  lastFailure(folder: string, since = 0): Failure | undefined {
    const last = this.failures.get(folder);
    return last && last.at >= since ? last.failure : undefined;
  }

  // Told without a model call; undefined: not the proxy's cause.
  holds(cause: PermanentCause, folder: string): boolean | undefined {
    const { readSecrets, dailyTokenBudget, tokensUsedToday } = this.deps;
    if (cause === 'no-credentials') return credentialsId(readSecrets()) === '';
    if (cause === 'invalid-credentials')
      return !!this.refused && credentialsId(readSecrets()) === this.refused;
    if (cause !== 'budget-spent') return undefined;
    const budget = dailyTokenBudget(folder);
    return budget !== undefined && tokensUsedToday(folder) >= budget;
  }

  socketDir(folder: string): string {
    return path.join(this.deps.proxyDir, folder);
  }

  async ensureGroup(folder: string): Promise<void> {
    if (!this.groups.has(folder)) {
      const started = this.startGroup(folder);
      this.groups.set(folder, started);
      started.catch(() => this.groups.get(folder) === started && this.groups.delete(folder));
    }
    await this.groups.get(folder);
  }

  async stop(): Promise<void> {
    const all = [...this.groups.values()];
    this.groups.clear();
    for (const started of await Promise.allSettled(all))
      for (const close of started.status === 'fulfilled' ? started.value : []) await close();
  }

  private async startGroup(folder: string): Promise<Close[]> {
    if (!isValidFolder(folder)) throw new Error(`invalid group folder name: ${JSON.stringify(folder)}`);
    const { proxyDir, sandboxUid: uid } = this.deps;
    const dir = this.socketDir(folder);
    // Parents stay traversable (bwrap resolves the bind source as the sandbox user); the group's folder is
    // the sandbox user's alone. chmod, as umask filters mkdir's mode.
    await fs.mkdir(proxyDir, { recursive: true, mode: 0o755 });
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(proxyDir, 0o755);
    await fs.chmod(dir, 0o700);
    if (uid !== undefined) await fs.chown(dir, uid, uid);
    const closers: Close[] = [];
    try {
      closers.push(await listen(createModelProxyServer(folder, this.deps), `${dir}/api.sock`, uid));
      closers.push(await listen(createEgressProxyServer(folder, this.deps), `${dir}/egress.sock`, uid));
    } catch (err) {
      for (const close of closers) await close();
      throw new Error(`cannot start the proxies of ${folder}: ${(err as Error).message}`);
    }
    logger.info({ folder, dir }, 'group proxies listening');
    return closers;
  }
}

async function listen(server: net.Server, socketPath: string, uid?: number): Promise<Close> {
  const max = process.platform === 'linux' ? 107 : 103; // sun_path less its NUL
  if (Buffer.byteLength(socketPath) > max)
    throw new Error(
      `${socketPath} is longer than a unix socket allows (${max} bytes): use a shorter NANOCLAW_HOME`,
    );
  // A crashed run leaves its socket behind (EADDRINUSE).
  const existing = await fs.lstat(socketPath).catch(() => undefined);
  if (existing && !existing.isSocket())
    throw new Error(`${socketPath} exists and is not a socket; move it away`);
  if (existing) await fs.unlink(socketPath);
  const sockets = new Set<net.Socket>();
  server.on('error', (err) => logger.error({ socketPath, err }, 'proxy server error'));
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await once(server.listen(socketPath), 'listening');
  // Connecting needs write permission: the sandbox user and root only.
  await fs.chmod(socketPath, 0o600);
  if (uid !== undefined) await fs.chown(socketPath, uid, uid);
  return async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy(); // streams and tunnels would hold the server open
    await closed;
    await fs.rm(socketPath, { force: true });
  };
}
