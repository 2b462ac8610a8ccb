import http from 'node:http';
import net from 'node:net';
import { logger } from '../logger.js';
import { checkTarget, type LookupFn } from './address-guard.js';
import { forwardableHeaders, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader, normalizeHost, policyForGroup } from './network-policy.js';

export type TcpTarget = { host: string; port: number; family: 4 | 6 };
export type EgressProxyDeps = {
  configDir: string;
  lookup?: LookupFn;
  connectTcp?: (target: TcpTarget) => net.Socket;
  interfaceAddresses?: () => readonly string[];
};

export function createEgressProxyServer(folder: string, deps: EgressProxyDeps) {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const policy = () => policyForGroup(readPolicy(), folder);
  const server = http.createServer();

  // A cap per group, so a sandbox cannot exhaust the host's file descriptors.
  const admitted = new Set<net.Socket>();
  const overCap = new WeakSet<net.Socket>();
  let max = 0;
  server.on('connection', (socket: net.Socket) => {
    max = policy().maxConnections ?? 64;
    if (admitted.size >= max) return void overCap.add(socket.setTimeout(10_000, () => socket.destroy()));
    admitted.add(socket.once('close', () => admitted.delete(socket)));
  });

  async function open(
    req: http.IncomingMessage,
    client: net.Socket | http.ServerResponse,
    target: { host: string; port: number } | undefined,
    use: (up: net.Socket, fail: (err: Error) => void) => void,
  ) {
    const isHttp = client instanceof http.ServerResponse;
    let to = req.url;
    let up: net.Socket | undefined;
    client.once('close', () => up?.destroy());
    // Once answered, a later failure can only cut the connection.
    const refuse = (status: number, reason: string) => {
      if (!isHttp && client.bytesWritten) return void client.destroy();
      logger.info({ folder, target: to, status, reason }, 'egress refused');
      const body = `Refused by the NanoClaw egress proxy: ${reason}\n`;
      if (isHttp) sendBody(client, status, body, { connection: 'close' });
      else client.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n${body}`);
    };
    const fail = (err: Error) => refuse(502, `could not reach ${to}: ${err.message}`);
    try {
      if (overCap.has(req.socket))
        return refuse(
          429,
          `this group already has ${max} open connections (maxConnections in network-policy.json)`,
        );
      if (!target) return refuse(400, 'use GET http://host/path or CONNECT host:port');
      const { host, port } = target;
      to = `${normalizeHost(host)}:${port}`;
      const ok = await checkTarget(host, port, policy(), deps.lookup, deps.interfaceAddresses?.());
      if (!ok.allowed) return refuse(ok.status, ok.reason);
      logger.info({ folder, target: to, address: ok.address }, 'egress connection');
      if (client.destroyed) return;
      up = (deps.connectTcp ?? net.connect)({ host: ok.address, port, family: ok.family });
      up.setTimeout(600_000, () => up!.destroy(new Error('idle timeout')));
      use(up.on('error', fail), fail);
    } catch (err) {
      logger.error({ folder, err }, 'egress proxy failed');
      client.destroy();
    }
  }

  server.on('request', (req, res) => {
    const url = URL.parse(req.url ?? '');
    const target =
      url?.protocol === 'http:' ? { host: url.hostname, port: Number(url.port || 80) } : undefined;
    void open(req, res, target, (up, fail) => {
      const upstream = http.request({
        method: req.method,
        path: url!.pathname + url!.search,
        // The absolute URI wins over the received Host (RFC 9112 §3.2.2).
        headers: { ...forwardableHeaders(req.headers), host: url!.host, connection: 'close' },
        createConnection: () => up,
      });
      upstream.on('error', fail);
      relay(upstream, res);
      req.pipe(upstream);
    });
  });

  server.on('connect', (req, socket: net.Socket, head) => {
    // The HTTP server no longer watches this socket; an unhandled reset would crash the host.
    socket.on('error', () => undefined);
    // Normalised as a URL host: 0x7f000001 is 127.0.0.1.
    const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(req.url ?? '');
    const [host, port] = [URL.parse(`http://${match?.[1]}/`)?.hostname, Number(match?.[2])];
    const target = match && host && port > 0 && port < 65536 ? { host, port } : undefined;
    void open(req, socket, target, (up) => {
      socket.setTimeout(600_000, () => socket.destroy());
      up.once('connect', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(socket).pipe(up);
      });
    });
  });

  return server;
}
