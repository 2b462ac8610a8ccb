import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { log } from './output.js';

/**
 * The sandbox has no network but loopback; the host's proxies are unix sockets (api.sock,
 * egress.sock) and the SDK speaks TCP, so each socket gets a loopback listener piping through.
 */
export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

function startForwarder(socketPath: string): Promise<Forwarder> {
  const connections = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    const drop = () => {
      for (const socket of [client, upstream]) {
        socket.destroy();
        connections.delete(socket);
      }
    };
    connections.add(client).add(upstream);
    client.on('error', drop).on('close', drop);
    upstream.on('close', drop).on('error', (err) => {
      log('proxy socket unreachable', { socketPath, error: err.message });
      drop();
    });
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of connections) socket.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

export interface ProxyForwarders {
  api: Forwarder;
  egress?: Forwarder;
  close(): Promise<void>;
}

/** The model forwarder always starts: without it the SDK would try Anthropic's own hosts. */
export async function startProxyForwarders(proxyDir: string): Promise<ProxyForwarders> {
  const apiSocket = path.join(proxyDir, 'api.sock');
  const egressSocket = path.join(proxyDir, 'egress.sock');
  if (!fs.existsSync(apiSocket)) log('model proxy socket missing', { apiSocket });
  const api = await startForwarder(apiSocket);
  const egress = fs.existsSync(egressSocket) ? await startForwarder(egressSocket) : undefined;
  return { api, egress, close: async () => void (await Promise.all([api.close(), egress?.close()])) };
}
