import http from 'node:http';
import net from 'node:net';
import { logger } from '../logger.js';
import { checkTarget, type LookupFn } from './address-guard.js';
import { forwardableHeaders, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader, normalizeHost, policyForGroup } from './network-policy.js';

export type TcpTarget = { host: string; port: number; family: 4 | 6 };

export interface EgressProxyDeps {
  configDir: string;
  lookup?: LookupFn;
  connectTcp?: (target: TcpTarget) => net.Socket;
  interfaceAddresses?: () => readonly string[];
  maxConnections?: number;
}

type Log = { target?: string; allowed: boolean; reason?: string; status?: number };

export function createEgressProxyServer(folder: string, deps: EgressProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const policy = () => policyForGroup(readPolicy(), folder);
  const server = http.createServer();

  // A cap per group, so a sandbox cannot exhaust the host's file descriptors. Logged once per burst: when
  // it is hit, and when usage falls to half of it.
  const admitted = new Set<net.Socket>();
  const refused = new WeakSet<net.Socket>();
  let max = 0;
  let burst: { refused: number; max: number } | undefined;
  server.on('connection', (socket: net.Socket) => {
    max = policy().maxConnections ?? deps.maxConnections ?? 64;
    if (admitted.size >= max) {
      refused.add(socket);
      socket.setTimeout(10_000, () => socket.destroy());
      if (!burst) logger.warn({ folder, max }, 'egress connection limit reached: refusing new connections');
      (burst ??= { refused: 0, max }).refused++;
      return;
    }
    admitted.add(socket);
    socket.once('close', () => {
      admitted.delete(socket);
      if (!burst || admitted.size > burst.max / 2) return;
      logger.info({ folder, ...burst }, 'egress connection burst over');
      burst = undefined;
    });
  });

  // Checks the target, dials the address checked, logs the connection when the client closes.
  function open(
    req: http.IncomingMessage,
    client: net.Socket | http.ServerResponse,
    target: { host: string; port: number } | undefined,
    use: (up: net.Socket, log: Log, fail: (err: Error) => void) => void,
  ): void {
    const [started, kind] = [Date.now(), 'statusCode' in client ? 'http' : 'connect'];
    const log: Log = { target: req.url, allowed: false };
    let up: net.Socket | undefined;
    client.once('close', () => {
      up?.destroy();
      const status = 'statusCode' in client ? client.statusCode : log.status;
      const bytes = { bytesOut: up?.bytesWritten ?? 0, bytesIn: up?.bytesRead ?? 0 };
      logger.info({ folder, kind, ...log, status, ...bytes, ms: Date.now() - started }, 'egress connection');
    });
    // Once answered, a later failure can only cut the connection (a tunnel passes a reset on as a reset).
    const refuse = (status: number, reason: string) => {
      if (log.status) return void (log.status === 200 && client.destroy());
      [log.status, log.reason] = [status, reason];
      const body = `Refused by the NanoClaw egress proxy: ${reason}\n`;
      if ('statusCode' in client) sendBody(client, status, body, { connection: 'close' });
      else if (!client.destroyed) {
        const head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\n`;
        client.end(`${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
    };
    const fail = (err: Error) => refuse(502, `could not reach ${log.target}: ${err.message}`);
    const run = async () => {
      const over = `this group already has ${max} open connections, its limit (maxConnections in network-policy.json)`;
      if (refused.has(req.socket)) return refuse(429, `${over}; close some and retry`);
      if (!target) return refuse(400, 'send GET http://host/path for http, CONNECT host:port for https');
      const { host, port } = target;
      log.target = `${normalizeHost(host)}:${port}`;
      const to = await checkTarget(host, port, policy(), deps.lookup, deps.interfaceAddresses?.());
      if (!to.allowed) return refuse(to.status, to.reason);
      log.allowed = true;
      if (client.destroyed) return; // the client gave up while the name was resolving
      const socket = (up = (deps.connectTcp ?? net.connect)({ host: to.address, port, family: to.family }));
      socket.setTimeout(600_000, () => socket.destroy(new Error('idle timeout')));
      socket.on('error', fail);
      use(socket, log, fail);
    };
    run().catch((err: unknown) => {
      logger.error({ folder, err }, 'egress proxy failed');
      client.destroy();
    });
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = URL.parse(req.url ?? '');
    const target =
      url?.protocol === 'http:' ? { host: url.hostname, port: Number(url.port || 80) } : undefined;
    open(req, res, target, (up, _log, fail) => {
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

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    // The HTTP server no longer watches a CONNECT socket; an unhandled reset would crash the host.
    socket.on('error', () => undefined);
    // Normalised as a URL host: 0x7f000001 is 127.0.0.1.
    const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(req.url ?? '');
    const [host, port] = [URL.parse(`http://${match?.[1]}/`)?.hostname, Number(match?.[2])];
    const target = match && host && port >= 1 && port <= 65535 ? { host, port } : undefined;
    open(req, socket, target, (up, log) => {
      socket.setTimeout(600_000, () => socket.destroy());
      up.once('connect', () => {
        log.status = 200;
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) up.write(head);
        up.pipe(socket).pipe(up);
      });
    });
  });

  return server;
}
