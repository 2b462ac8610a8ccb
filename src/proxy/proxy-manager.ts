import { once } from 'node:events';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { isValidFolder } from '../contract/ipc.js';
import { logger } from '../logger.js';
import { createEgressProxyServer, type EgressProxyDeps } from './egress-proxy.js';
import { createModelProxyServer, type ModelProxyDeps } from './model-proxy.js';

export interface ProxyDeps extends ModelProxyDeps, EgressProxyDeps {
  proxyDir: string;
  sandboxUid?: number;
}

/** sun_path, less its NUL. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

type Close = () => Promise<void>;

/**
 * Per group, api.sock (model proxy) and egress.sock in <proxyDir>/<folder>/, mounted in that group's
 * sandbox alone: the socket names the group, and nothing the sandbox sends can claim another.
 */
export class ProxyManager {
  private readonly groups = new Map<string, Promise<Close[]>>();
  private readonly deps: ProxyDeps;

  constructor(deps: ProxyDeps) {
    this.deps = { ...deps, envFile: deps.envFile ?? path.join(deps.proxyDir, '..', '..', '.env') };
  }

  socketDir(groupFolder: string): string {
    return path.join(this.deps.proxyDir, groupFolder);
  }

  ensureGroup(groupFolder: string): Promise<void> {
    let started = this.groups.get(groupFolder);
    if (!started) {
      const attempt = this.startGroup(groupFolder);
      attempt.catch(() => this.groups.get(groupFolder) === attempt && this.groups.delete(groupFolder));
      this.groups.set(groupFolder, (started = attempt));
    }
    return started.then(() => undefined);
  }

  async stop(): Promise<void> {
    const all = [...this.groups.values()];
    this.groups.clear();
    for (const result of await Promise.allSettled(all)) {
      if (result.status === 'fulfilled') for (const close of result.value) await close();
    }
  }

  private async startGroup(folder: string): Promise<Close[]> {
    if (!isValidFolder(folder)) throw new Error(`invalid group folder name: ${JSON.stringify(folder)}`);
    const { proxyDir, sandboxUid } = this.deps;
    const dir = this.socketDir(folder);
    // Parents must stay traversable (bwrap resolves the bind source as the sandbox user); the
    // group's folder is the sandbox user's alone. chmod, as mkdir's mode is filtered by umask.
    await fs.promises.mkdir(proxyDir, { recursive: true, mode: 0o755 });
    await fs.promises.chmod(proxyDir, 0o755);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(dir, 0o700);
    if (sandboxUid !== undefined) await fs.promises.chown(dir, sandboxUid, sandboxUid);

    const closers: Close[] = [];
    try {
      closers.push(
        await listen(createModelProxyServer(folder, this.deps), path.join(dir, 'api.sock'), sandboxUid),
      );
      closers.push(
        await listen(createEgressProxyServer(folder, this.deps), path.join(dir, 'egress.sock'), sandboxUid),
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
  const length = Buffer.byteLength(socketPath);
  if (length > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `socket path ${socketPath} is ${length} bytes; unix sockets allow ${MAX_SOCKET_PATH_BYTES}: use a shorter NANOCLAW_HOME`,
    );
  }
  // A crashed run leaves its socket behind (EADDRINUSE).
  const existing = await fs.promises.lstat(socketPath).catch(() => undefined);
  if (existing?.isSocket()) await fs.promises.unlink(socketPath);
  else if (existing) throw new Error(`${socketPath} exists and is not a socket; move it away`);
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(socketPath);
  await once(server, 'listening');
  // Connecting needs write permission: the sandbox user and root only.
  await fs.promises.chmod(socketPath, 0o600);
  if (uid !== undefined) await fs.promises.chown(socketPath, uid, uid);
  return async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy(); // streams and tunnels would hold the server open
    await closed;
    await fs.promises.rm(socketPath, { force: true });
  };
}
