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

/** Per group, api.sock and egress.sock in <proxyDir>/<folder>/, mounted in that sandbox alone: the socket names the group. */
export class ProxyManager {
  private readonly groups = new Map<string, Promise<Close[]>>();
  private readonly failures = new Map<string, { failure: Failure; at: number }>();
  /** The credentials the model refused (401/403), as their hash. */
  private refused: string | undefined;

  constructor(private readonly deps: ProxyDeps) {
    this.deps = {
      ...deps,
      envFile: deps.envFile ?? path.join(deps.proxyDir, '..', '..', '.env'),
      onOutcome: (folder, outcome, credentials) => {
        deps.onOutcome?.(folder, outcome, credentials);
        if (outcome?.cause === 'invalid-credentials') this.refused = credentials;
        else if (outcome === null && credentials === this.refused) this.refused = undefined;
        if (outcome) this.failures.set(folder, { failure: outcome, at: Date.now() });
        else this.failures.delete(folder);
      },
    };
  }

  /** The group's last model call failed at or after `since`: why. */
  lastFailure(groupFolder: string, since = 0): Failure | undefined {
    const last = this.failures.get(groupFolder);
    return last && last.at >= since ? last.failure : undefined;
  }

  /** Whether a cause the proxy knows of holds now, told without a model call; undefined: not its cause. */
  holds(cause: PermanentCause, groupFolder: string): boolean | undefined {
    const { deps } = this;
    if (cause === 'no-credentials') return credentialsId(deps.readSecrets()) === '';
    if (cause === 'invalid-credentials')
      return this.refused !== undefined && credentialsId(deps.readSecrets()) === this.refused;
    if (cause !== 'budget-spent') return undefined;
    const budget = deps.dailyTokenBudget(groupFolder);
    return budget !== undefined && deps.tokensUsedToday(groupFolder) >= budget;
  }

  socketDir(groupFolder: string): string {
    return path.join(this.deps.proxyDir, groupFolder);
  }

  async ensureGroup(groupFolder: string): Promise<void> {
    if (!this.groups.has(groupFolder)) {
      const started = this.startGroup(groupFolder);
      this.groups.set(groupFolder, started);
      // A failed start is retried on the next call.
      started.catch(() => this.groups.get(groupFolder) === started && this.groups.delete(groupFolder));
    }
    await this.groups.get(groupFolder);
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
    for (const [at, mode] of [
      [proxyDir, 0o755],
      [dir, 0o700],
    ] as const) {
      await fs.mkdir(at, { recursive: true, mode });
      await fs.chmod(at, mode);
    }
    if (uid !== undefined) await fs.chown(dir, uid, uid);
    const closers: Close[] = [];
    try {
      closers.push(await listen(createModelProxyServer(folder, this.deps), path.join(dir, 'api.sock'), uid));
      closers.push(
        await listen(createEgressProxyServer(folder, this.deps), path.join(dir, 'egress.sock'), uid),
      );
    } catch (err) {
      for (const close of closers) await close();
      throw new Error(`cannot start the proxies for ${folder} in ${dir}: ${(err as Error).message}`);
    }
    logger.info({ folder, dir }, 'group proxies listening');
    return closers;
  }
}

async function listen(server: net.Server, socketPath: string, uid: number | undefined): Promise<Close> {
  const [bytes, max] = [Buffer.byteLength(socketPath), process.platform === 'linux' ? 107 : 103]; // sun_path less NUL
  if (bytes > max)
    throw new Error(
      `socket path ${socketPath} is ${bytes} bytes; unix sockets allow ${max}: use a shorter NANOCLAW_HOME`,
    );
  // A crashed run leaves its socket behind (EADDRINUSE).
  const existing = await fs.lstat(socketPath).catch(() => undefined);
  if (existing && !existing.isSocket())
    throw new Error(`${socketPath} exists and is not a socket; move it away`);
  if (existing) await fs.unlink(socketPath);
  const sockets = new Set<net.Socket>();
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
