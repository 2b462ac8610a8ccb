import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { log } from './log.js';

/**
 * The sandbox has no network interface but loopback. The host's model proxy and egress proxy
 * are unix sockets mounted at /run/nanoclaw; the SDK and the agent's tools speak TCP, so each
 * socket gets a tiny loopback TCP listener that pipes every connection through unchanged.
 */
export interface Forwarder {
  port: number;
  socketPath: string;
  close(): Promise<void>;
}

export function startForwarder(socketPath: string): Promise<Forwarder> {
  const connections = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    connections.add(client);
    connections.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      connections.delete(client);
      connections.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', (err) => {
      log('proxy socket unreachable', { socketPath, error: err.message });
      drop();
    });
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        socketPath,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of connections) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

export interface ProxyForwarders {
  api: Forwarder;
  /** Absent when the host gave this sandbox no egress proxy. */
  egress?: Forwarder;
  close(): Promise<void>;
}

/**
 * The model forwarder is always started: without a local ANTHROPIC_BASE_URL the SDK would try
 * Anthropic's own hosts. If api.sock is missing, model calls fail fast at the forwarder.
 */
export async function startProxyForwarders(proxyDir: string): Promise<ProxyForwarders> {
  const apiSocket = path.join(proxyDir, 'api.sock');
  const egressSocket = path.join(proxyDir, 'egress.sock');
  if (!fs.existsSync(apiSocket)) log('model proxy socket missing', { apiSocket });
  const api = await startForwarder(apiSocket);
  const egress = fs.existsSync(egressSocket) ? await startForwarder(egressSocket) : undefined;
  return {
    api,
    egress,
    close: async () => {
      await Promise.all([api.close(), egress?.close()]);
    },
  };
}
