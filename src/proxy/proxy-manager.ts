import fs from 'node:fs';
import type http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { isValidFolder } from '../config.js';
import { logger } from '../logger.js';
import { createEgressProxyServer, type EgressProxyDeps } from './egress-proxy.js';
import { chownQuietly, closeServer, listenOnUnixSocket, trackSockets } from './http-util.js';
import { createModelProxyServer, type ModelProxyDeps } from './model-proxy.js';

export { checkTarget, forbiddenAddressReason, systemLookup } from './address-guard.js';
export type { LookupFn, ResolvedAddress, TargetDecision } from './address-guard.js';
export { createEgressProxyServer } from './egress-proxy.js';
export type { EgressProxyDeps, TcpConnector, TcpTarget } from './egress-proxy.js';
export { createModelProxyServer } from './model-proxy.js';
export type { ModelProxyDeps } from './model-proxy.js';
export { loadNetworkPolicy, policyForGroup } from './network-policy.js';
export type { GroupNetworkPolicy, LoadedNetworkPolicy, NetworkPolicyFile } from './network-policy.js';

export interface ProxyDeps extends ModelProxyDeps, EgressProxyDeps {
  /** config.proxyDir ($NANOCLAW_HOME/data/proxy); sockets go in <proxyDir>/<folder>/. */
  proxyDir: string;
  /** When set (host runs as root), the socket dir and sockets are chowned to the sandbox user. */
  sandboxUid?: number;
}

export const MODEL_SOCKET = 'api.sock';
export const EGRESS_SOCKET = 'egress.sock';

interface GroupProxies {
  servers: Array<{ server: http.Server; sockets: Set<net.Socket>; socketPath: string }>;
}

/**
 * Owns the per-group proxy servers. A group's directory holds only its two sockets and is mounted
 * read-only at /run/nanoclaw in that group's sandbox alone, so the socket a request arrives on
 * names the group; nothing the sandbox sends can claim to be another group.
 */
export class ProxyManager {
  private readonly groups = new Map<string, Promise<GroupProxies>>();
  private readonly deps: ProxyDeps;

  constructor(deps: ProxyDeps) {
    this.deps = {
      ...deps,
      envFile: deps.envFile ?? path.join(path.dirname(path.dirname(deps.proxyDir)), '.env'),
    };
  }

  socketDir(groupFolder: string): string {
    return path.join(this.deps.proxyDir, groupFolder);
  }

  /** Idempotent; concurrent calls for one group share a single start. A failed start can be retried. */
  ensureGroup(groupFolder: string): Promise<void> {
    let started = this.groups.get(groupFolder);
    if (!started) {
      started = this.startGroup(groupFolder);
      this.groups.set(groupFolder, started);
      const attempt = started;
      attempt.catch(() => {
        if (this.groups.get(groupFolder) === attempt) this.groups.delete(groupFolder);
      });
    }
    return started.then(() => undefined);
  }

  async stop(): Promise<void> {
    const all = [...this.groups.values()];
    this.groups.clear();
    const settled = await Promise.allSettled(all);
    for (const result of settled) {
      if (result.status !== 'fulfilled') continue;
      for (const { server, sockets, socketPath } of result.value.servers) {
        await closeServer(server, sockets);
        await fs.promises.rm(socketPath, { force: true });
      }
    }
  }

  private async startGroup(folder: string): Promise<GroupProxies> {
    if (!isValidFolder(folder)) throw new Error(`invalid group folder name: ${JSON.stringify(folder)}`);
    const dir = this.socketDir(folder);
    // Two steps: a recursive mkdir gives its mode to every parent it creates, and those must stay
    // traversable (bwrap resolves the bind source as the sandbox user).
    await fs.promises.mkdir(this.deps.proxyDir, { recursive: true, mode: 0o755 });
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by umask and ignored for an existing dir. The group's own folder is
    // the sandbox user's alone, so no other local account can reach the sockets, which spend the
    // owner's model budget and egress as the host.
    await fs.promises.chmod(this.deps.proxyDir, 0o755);
    await fs.promises.chmod(dir, 0o700);
    if (this.deps.sandboxUid !== undefined) await chownQuietly(dir, this.deps.sandboxUid);

    const group: GroupProxies = { servers: [] };
    const plan: Array<[string, http.Server]> = [
      [MODEL_SOCKET, createModelProxyServer(folder, this.deps)],
      [EGRESS_SOCKET, createEgressProxyServer(folder, this.deps)],
    ];
    try {
      for (const [name, server] of plan) {
        const socketPath = path.join(dir, name);
        const sockets = trackSockets(server);
        await listenOnUnixSocket(server, socketPath, this.deps.sandboxUid);
        group.servers.push({ server, sockets, socketPath });
        // Connecting needs write permission on the socket: the sandbox user (its owner) and root.
        await fs.promises.chmod(socketPath, 0o600);
      }
    } catch (err) {
      for (const { server, sockets, socketPath } of group.servers) {
        await closeServer(server, sockets);
        await fs.promises.rm(socketPath, { force: true });
      }
      throw new Error(`cannot start the proxies for ${folder} in ${dir}: ${(err as Error).message}`);
    }
    logger.info({ folder, dir }, 'group proxies listening');
    return group;
  }
}
