import http from 'node:http';
import net from 'node:net';
import { logger } from '../logger.js';
import { checkTarget, systemInterfaceAddresses, systemLookup, type LookupFn } from './address-guard.js';
import { forwardableHeaders, guardServer, sendBody } from './http-util.js';
import { createNetworkPolicyReader, normalizeHost, policyForGroup } from './network-policy.js';

export interface TcpTarget {
  host: string;
  port: number;
  family: 4 | 6;
}

export interface EgressProxyDeps {
  configDir: string;
  lookup?: LookupFn;
  /** Tests prove a refused target is never dialled. */
  connectTcp?: (target: TcpTarget) => net.Socket;
  interfaceAddresses?: () => readonly string[];
  maxConnections?: number;
}

const IDLE_TIMEOUT_MS = 10 * 60_000;
const USAGE_HINT =
  'This is an HTTP proxy: send absolute-URI requests (GET http://host/path) for http, CONNECT host:port for https.';
const refusal = (reason: string) => `Refused by the NanoClaw egress proxy: ${reason}\n`;

class ConnectionLog {
  allowed = false;
  reason?: string;
  status?: number;
  private readonly started = Date.now();
  constructor(
    readonly folder: string,
    readonly kind: 'http' | 'connect',
    public target = '',
  ) {}

  write(upstream?: net.Socket, status = this.status): void {
    const { started, ...entry }: ConnectionLog = this;
    const bytes = { bytesOut: upstream?.bytesWritten ?? 0, bytesIn: upstream?.bytesRead ?? 0 };
    logger.info({ ...entry, status, ...bytes, ms: Date.now() - started }, 'egress connection');
  }
}

export function createEgressProxyServer(folder: string, deps: EgressProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const { lookup = systemLookup, interfaceAddresses = systemInterfaceAddresses } = deps;
  const connectTcp = deps.connectTcp ?? ((t: TcpTarget) => net.connect(t));
  const decide = async (log: ConnectionLog, host: string, port: number) => {
    log.target = `${normalizeHost(host)}:${port}`;
    const policy = policyForGroup(readPolicy(), folder);
    const decision = await checkTarget(host, port, policy, lookup, interfaceAddresses());
    if (decision.allowed) log.allowed = true;
    else log.reason = decision.reason;
    return decision;
  };
  const limit = connectionLimit(
    folder,
    () => policyForGroup(readPolicy(), folder).maxConnections ?? deps.maxConnections ?? 64,
  );

  const server = http.createServer((req, res) => {
    const over = limit.refusal(req.socket);
    if (over) return sendBody(res, 429, 'text/plain', refusal(over), { connection: 'close' });
    handleHttp(req, res).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress request failed');
      sendBody(res, 502, 'text/plain', 'egress proxy error\n');
    });
  });

  async function handleHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const log = new ConnectionLog(folder, 'http', req.url);
    let dialled: net.Socket | undefined;
    res.once('close', () => log.write(dialled, res.statusCode));
    const url = URL.canParse(req.url ?? '') ? new URL(req.url!) : undefined;
    if (url?.protocol !== 'http:') {
      log.reason = 'not an absolute http:// request';
      return sendBody(res, 400, 'text/plain', `${USAGE_HINT}\n`, { connection: 'close' });
    }
    const port = Number(url.port || 80);
    const decision = await decide(log, url.hostname, port);
    if (!decision.allowed) return sendBody(res, decision.status, 'text/plain', refusal(decision.reason));
    if (res.destroyed) return; // the client gave up while the name was resolving

    const upstream = http.request({
      method: req.method,
      path: url.pathname + url.search,
      // The absolute URI wins over the received Host (RFC 9112 §3.2.2).
      headers: { ...forwardableHeaders(req.headers), host: url.host, connection: 'close' },
      createConnection: () =>
        (dialled = connectTcp({ host: decision.address, port, family: decision.family })),
    });
    upstream.setTimeout(IDLE_TIMEOUT_MS, () => upstream.destroy(new Error('idle timeout')));
    upstream.on('response', (upstreamRes) => {
      try {
        res.writeHead(upstreamRes.statusCode ?? 502, forwardableHeaders(upstreamRes.headers));
      } catch {
        upstream.destroy(); // a status or header Node will not send
        return res.destroy();
      }
      upstreamRes.on('close', () => upstreamRes.complete || res.destroy());
      upstreamRes.pipe(res);
    });
    upstream.on('error', (err) => {
      log.reason = `upstream error: ${err.message}`;
      sendBody(res, 502, 'text/plain', `The egress proxy could not reach ${log.target}: ${err.message}\n`);
    });
    res.once('close', () => res.writableFinished || upstream.destroy());
    req.pipe(upstream);
  }

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    // The HTTP server no longer watches a CONNECT socket; an unhandled reset would crash the host.
    socket.on('error', () => undefined);
    const over = limit.refusal(socket);
    if (over) return replyAndClose(socket, 429, refusal(over));
    handleConnect(req, socket, head).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress tunnel failed');
      socket.destroy();
    });
  });

  async function handleConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const log = new ConnectionLog(folder, 'connect', req.url);
    let upstream: net.Socket | undefined;
    socket.once('close', () => {
      upstream?.destroy();
      log.write(upstream);
    });
    const refuse = (status: number, reason: string, body = refusal(reason)) => {
      [log.status, log.reason] = [status, reason];
      replyAndClose(socket, status, body);
    };
    const target = parseAuthority(req.url ?? '');
    if (!target) return refuse(400, 'malformed CONNECT target', `${USAGE_HINT}\n`);
    const decision = await decide(log, target.host, target.port);
    if (!decision.allowed) return refuse(decision.status, decision.reason);
    if (socket.destroyed) return; // the client gave up while the name was resolving

    const tunnel = (upstream = connectTcp({
      host: decision.address,
      port: target.port,
      family: decision.family,
    }));
    tunnel.setTimeout(IDLE_TIMEOUT_MS, () => tunnel.destroy(new Error('idle timeout')));
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    tunnel.once('connect', () => {
      log.status = 200;
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) tunnel.write(head);
      tunnel.pipe(socket);
      socket.pipe(tunnel);
    });
    tunnel.on('error', (err) => {
      const reason = `upstream error: ${err.message}`;
      if (log.status === 200) log.reason = reason;
      else refuse(502, reason, `The egress proxy could not reach ${log.target}: ${err.message}\n`);
    });
    // pipe() passes a clean end on; a reset is passed on as a reset.
    tunnel.once('close', (hadError: boolean) => hadError && log.status === 200 && socket.destroy());
  }

  server.on('connection', (socket: net.Socket) => limit.admit(socket));
  return guardServer(server, folder, 'egress proxy');
}

/**
 * So a sandbox cannot exhaust the host's file descriptors. Logged once per burst: when the cap is
 * hit, and when usage falls to half of it.
 */
function connectionLimit(folder: string, currentMax: () => number) {
  const admitted = new Set<net.Socket>();
  const refused = new WeakSet<net.Socket>();
  let max = 0;
  let burst: { refused: number; max: number } | undefined;
  return {
    admit(socket: net.Socket): void {
      max = currentMax();
      if (admitted.size < max) {
        admitted.add(socket);
        socket.once('close', () => {
          admitted.delete(socket);
          if (burst && admitted.size <= burst.max / 2) {
            logger.info({ folder, ...burst }, 'egress connection burst over');
            burst = undefined;
          }
        });
        return;
      }
      refused.add(socket);
      socket.setTimeout(10_000, () => socket.destroy()); // in case no request ever comes
      if (!burst) {
        burst = { refused: 0, max };
        logger.warn({ folder, max }, 'egress connection limit reached: refusing new connections');
      }
      burst.refused++;
    },
    refusal: (socket: net.Socket): string | undefined =>
      refused.has(socket)
        ? `this group already has ${max} open connections, its limit (maxConnections in network-policy.json); close some and retry`
        : undefined,
  };
}

/** `host:port` or `[v6]:port`, normalised as a URL host (0x7f000001 is 127.0.0.1). */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(authority);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) return undefined;
  const url = `http://${match[1]}/`;
  return URL.canParse(url) ? { host: normalizeHost(new URL(url).hostname), port } : undefined;
}

function replyAndClose(socket: net.Socket, status: number, body: string): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}
