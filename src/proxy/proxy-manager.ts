import { once } from 'node:events';
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { isValidFolder } from '../contract/ipc.js';
import type { Failure, PermanentCause } from '../failure-notice.js';
import { logger } from '../logger.js';
import { createEgressProxyServer, type EgressProxyDeps } from './egress-proxy.js';
import { createModelProxyServer, credentialsId, spentBudget, type ModelProxyDeps } from './model-proxy.js';

export type ProxyDeps = ModelProxyDeps & EgressProxyDeps & { proxyDir: string; sandboxUid?: number };
type Close = () => Promise<void>;

// Each group's sockets are mounted in its sandbox alone, so the socket names the group.
export class ProxyManager {
  private groups = new Map<string, Promise<Close[]>>();
  private failures = new Map<string, { failure: Failure; at: number }>();
  private refused?: string; // credentialsId the model refused

  constructor(private readonly deps: ProxyDeps) {
    this.deps = {
      ...deps,
      onOutcome: (folder, failure, credentials) => {
        if (failure?.cause === 'invalid-credentials') this.refused = credentials;
        else if (!failure && credentials === this.refused) this.refused = undefined;
        if (failure) this.failures.set(folder, { failure, at: Date.now() });
        else this.failures.delete(folder);
      },
    };
  }

  lastFailure(folder: string, since = 0) {
    const last = this.failures.get(folder);
    return last && last.at >= since ? last.failure : undefined;
  }

  // Told without a model call; undefined: not the proxy's cause.
  holds(cause: PermanentCause, folder: string) {
    const id = credentialsId(this.deps.readSecrets());
    if (cause === 'no-credentials') return id === '';
    if (cause === 'invalid-credentials') return !!this.refused && id === this.refused;
    if (cause === 'budget-spent') return spentBudget(this.deps, folder) !== undefined;
  }

  socketDir(folder: string) {
    return path.join(this.deps.proxyDir, folder);
  }

  async ensureGroup(folder: string) {
    let started = this.groups.get(folder);
    if (!started) {
      this.groups.set(folder, (started = this.startGroup(folder)));
      started.catch(() => this.groups.get(folder) === started && this.groups.delete(folder));
    }
    await started;
  }

  async stop() {
    const all = [...this.groups.values()];
    this.groups.clear();
    for (const started of all) for (const close of await started.catch(() => [])) await close();
  }

  private async startGroup(folder: string): Promise<Close[]> {
    if (!isValidFolder(folder)) throw new Error(`invalid group folder name: ${JSON.stringify(folder)}`);
    const { proxyDir, sandboxUid: uid } = this.deps;
    const dir = this.socketDir(folder);
    // Parents stay traversable (bwrap binds as the sandbox user); the folder is the sandbox user's alone.
    await fs.mkdir(dir, { recursive: true });
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
    return closers;
  }
}

async function listen(server: net.Server, socketPath: string, uid?: number): Promise<Close> {
  if (socketPath.length > 103) throw new Error(`${socketPath} is too long: use a shorter NANOCLAW_HOME`);
  await fs.rm(socketPath, { force: true }); // left by a crashed run
  const sockets = new Set<net.Socket>();
  server.on('error', (err) => logger.error({ socketPath, err }, 'proxy server error'));
  server.on('connection', (s: net.Socket) => sockets.add(s.once('close', () => sockets.delete(s))));
  await once(server.listen(socketPath), 'listening');
  await fs.chmod(socketPath, 0o600);
  if (uid !== undefined) await fs.chown(socketPath, uid, uid);
  return async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy(); // tunnels would hold the server open
    await closed;
    await fs.rm(socketPath, { force: true });
  };
}
