import http from 'node:http';
import net from 'node:net';
import { logger } from '../logger.js';
import {
  checkTarget,
  systemInterfaceAddresses,
  systemLookup,
  type LookupFn,
  type TargetDecision,
} from './address-guard.js';
import { forwardableHeaders, sendBody } from './http-util.js';
import { createNetworkPolicyReader, normalizeHost, policyForGroup } from './network-policy.js';

export interface TcpTarget {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Opens the outbound TCP connection; a parameter so tests can prove no refused target is dialled. */
export type TcpConnector = (target: TcpTarget) => net.Socket;

export interface EgressProxyDeps {
  /** Holds network-policy.json. */
  configDir: string;
  lookup?: LookupFn;
  connectTcp?: TcpConnector;
  /** A connection silent for this long is closed (default 10 minutes). */
  egressIdleTimeoutMs?: number;
  /** The host's own addresses, refused like loopback; read per connection (interfaces change). */
  interfaceAddresses?: () => readonly string[];
  /** Open connections per group when network-policy.json sets no maxConnections (default 64). */
  maxConnections?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_MAX_CONNECTIONS = 64;
/** A connection over the limit that never sends a request is not kept waiting for one. */
const REFUSED_SOCKET_TIMEOUT_MS = 10_000;

const defaultConnector: TcpConnector = (t) => net.connect({ host: t.host, port: t.port, family: t.family });

const USAGE_HINT =
  'This is an HTTP proxy: send absolute-URI requests (GET http://host/path) for http, CONNECT host:port for https.';

interface ConnectionLog {
  folder: string;
  kind: 'http' | 'connect';
  target: string;
  allowed: boolean;
  reason?: string;
  status?: number;
  bytesOut: number;
  bytesIn: number;
  started: number;
}

function logConnection(entry: ConnectionLog): void {
  const { started, ...rest } = entry;
  logger.info({ ...rest, ms: Date.now() - started }, 'egress connection');
}

/**
 * The egress proxy for one group (listening on its egress.sock). Sandboxes have no network
 * interface, so this is their only way out: every target is checked against the group's policy and
 * the address guard, then dialled at the address that was checked.
 */
export function createEgressProxyServer(folder: string, deps: EgressProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const lookup = deps.lookup ?? systemLookup;
  const connectTcp = deps.connectTcp ?? defaultConnector;
  const idleMs = deps.egressIdleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const interfaceAddresses = deps.interfaceAddresses ?? systemInterfaceAddresses;

  const decide = async (host: string, port: number): Promise<TargetDecision> => {
    try {
      const policy = policyForGroup(readPolicy(), folder);
      return await checkTarget(host, port, policy, lookup, interfaceAddresses());
    } catch (err) {
      logger.error({ folder, err }, 'egress check failed');
      return { allowed: false, status: 403, reason: 'the egress check failed (see the host log)' };
    }
  };

  const limit = createConnectionLimit(folder, () => {
    return (
      policyForGroup(readPolicy(), folder).maxConnections ?? deps.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    );
  });

  const server = http.createServer((req, res) => {
    if (limit.isOver(req.socket)) {
      sendBody(res, 429, 'text/plain', `Refused by the NanoClaw egress proxy: ${limit.message()}\n`, {
        close: true,
      });
      return;
    }
    handleHttp(req, res).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress request failed');
      sendBody(res, 502, 'text/plain', 'egress proxy error\n');
    });
  });

  async function handleHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const log: ConnectionLog = {
      folder,
      kind: 'http',
      target: req.url ?? '',
      allowed: false,
      bytesOut: 0,
      bytesIn: 0,
      started: Date.now(),
    };
    res.once('close', () => logConnection({ ...log, status: res.statusCode }));

    let url: URL | undefined;
    try {
      url = /^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '') ? new URL(req.url!) : undefined;
    } catch {
      url = undefined;
    }
    if (!url) {
      log.reason = 'not an absolute-URI request';
      sendBody(res, 400, 'text/plain', `${USAGE_HINT}\n`, { close: true });
      return;
    }
    if (url.protocol !== 'http:') {
      log.reason = `scheme ${url.protocol}`;
      sendBody(res, 400, 'text/plain', 'Only http:// URLs are forwarded this way; use CONNECT for https.\n', {
        close: true,
      });
      return;
    }
    const port = url.port ? Number(url.port) : 80;
    log.target = `${normalizeHost(url.hostname)}:${port}`;
    const decision = await decide(url.hostname, port);
    if (!decision.allowed) {
      log.reason = decision.reason;
      sendBody(
        res,
        decision.status,
        'text/plain',
        `Refused by the NanoClaw egress proxy: ${decision.reason}\n`,
      );
      return;
    }
    log.allowed = true;
    if (res.destroyed) return; // the client gave up while the name was resolving

    const headers = forwardableHeaders(req.headers);
    headers.host = url.host; // RFC 9112 §3.2.2: the absolute URI wins over the received Host
    headers.connection = 'close';
    const upstream = http.request({
      method: req.method,
      path: url.pathname + url.search,
      headers,
      createConnection: () => connectTcp({ host: decision.address, port, family: decision.family }),
    });
    upstream.setTimeout(idleMs, () => upstream.destroy(new Error('idle timeout')));
    upstream.on('response', (upstreamRes) => {
      try {
        res.writeHead(upstreamRes.statusCode ?? 502, forwardableHeaders(upstreamRes.headers));
      } catch (err) {
        log.reason = `bad upstream response: ${(err as Error).message}`;
        upstream.destroy();
        res.destroy();
        return;
      }
      upstreamRes.on('data', (chunk: Buffer) => (log.bytesIn += chunk.length));
      upstreamRes.on('error', () => undefined); // handled by 'close'
      upstreamRes.on('close', () => {
        if (!upstreamRes.complete) res.destroy();
      });
      upstreamRes.pipe(res);
    });
    upstream.on('error', (err) => {
      log.reason = `upstream error: ${err.message}`;
      if (res.headersSent) res.destroy();
      else
        sendBody(res, 502, 'text/plain', `The egress proxy could not reach ${log.target}: ${err.message}\n`);
    });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on('data', (chunk: Buffer) => (log.bytesOut += chunk.length));
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
  }

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    // After CONNECT the HTTP server no longer watches this socket; an unhandled reset would crash the host.
    socket.on('error', () => undefined);
    if (limit.isOver(socket)) {
      replyAndClose(
        socket,
        429,
        'Too Many Requests',
        `Refused by the NanoClaw egress proxy: ${limit.message()}\n`,
      );
      return;
    }
    handleConnect(req, socket, head).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress tunnel failed');
      socket.destroy();
    });
  });

  async function handleConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const log: ConnectionLog = {
      folder,
      kind: 'connect',
      target: req.url ?? '',
      allowed: false,
      bytesOut: 0,
      bytesIn: 0,
      started: Date.now(),
    };
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      log.reason = 'malformed CONNECT target';
      logConnection({ ...log, status: 400 });
      replyAndClose(socket, 400, 'Bad Request', `CONNECT needs host:port. ${USAGE_HINT}\n`);
      return;
    }
    log.target = `${target.host}:${target.port}`;
    const decision = await decide(target.host, target.port);
    if (!decision.allowed) {
      log.reason = decision.reason;
      logConnection({ ...log, status: decision.status });
      const text = decision.status === 403 ? 'Forbidden' : 'Bad Gateway';
      replyAndClose(
        socket,
        decision.status,
        text,
        `Refused by the NanoClaw egress proxy: ${decision.reason}\n`,
      );
      return;
    }
    log.allowed = true;
    if (socket.destroyed) {
      logConnection({ ...log, reason: 'client left before connect' });
      return;
    }

    const upstream = connectTcp({ host: decision.address, port: target.port, family: decision.family });
    let established = false;
    let openSides = 2;
    const sideClosed = () => {
      if (--openSides > 0) return;
      log.bytesOut = upstream.bytesWritten;
      log.bytesIn = upstream.bytesRead;
      logConnection({ ...log, status: established ? 200 : 502 });
    };
    upstream.setTimeout(idleMs, () => upstream.destroy(new Error('idle timeout')));
    socket.setTimeout(idleMs, () => socket.destroy());
    upstream.once('connect', () => {
      established = true;
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', (err) => {
      log.reason = `upstream error: ${err.message}`;
      if (!established) {
        replyAndClose(
          socket,
          502,
          'Bad Gateway',
          `The egress proxy could not reach ${log.target}: ${err.message}\n`,
        );
      }
    });
    upstream.once('close', (hadError: boolean) => {
      // A clean end was already passed on by pipe(); a reset is passed on as a reset.
      if (established && hadError) socket.destroy();
      sideClosed();
    });
    socket.once('close', () => {
      upstream.destroy();
      sideClosed();
    });
  }

  server.on('connection', (socket: net.Socket) => limit.admit(socket));
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('error', (err) => logger.error({ folder, err }, 'egress proxy server error'));
  return server;
}

/**
 * Caps the client connections one group holds open (each carries one HTTP request at a time or
 * one tunnel), so a sandbox cannot exhaust the host's file descriptors or flood a target. A
 * connection over the cap is answered 429 on its first request. Refusals are logged once per
 * burst: when the cap is first hit, and a summary once usage has fallen to half of it.
 */
function createConnectionLimit(folder: string, currentMax: () => number) {
  const admitted = new Set<net.Socket>();
  const refused = new WeakSet<net.Socket>();
  let max = 0;
  let burst: { refused: number; max: number } | undefined;
  return {
    admit(socket: net.Socket): void {
      max = currentMax();
      if (admitted.size >= max) {
        refused.add(socket);
        socket.setTimeout(REFUSED_SOCKET_TIMEOUT_MS, () => socket.destroy());
        if (!burst) {
          burst = { refused: 0, max };
          logger.warn({ folder, max }, 'egress connection limit reached: refusing new connections');
        }
        burst.refused++;
        return;
      }
      admitted.add(socket);
      socket.once('close', () => {
        admitted.delete(socket);
        if (burst && admitted.size <= burst.max / 2) {
          logger.info({ folder, max: burst.max, refused: burst.refused }, 'egress connection burst over');
          burst = undefined;
        }
      });
    },
    isOver: (socket: net.Socket): boolean => refused.has(socket),
    message: (): string =>
      `this group already has ${max} open connections, its limit (maxConnections in network-policy.json); ` +
      'close some and retry',
  };
}

/** `host:port` or `[v6]:port`, parsed like a URL authority so hosts are normalised the same way. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${match[1]}/`);
  } catch {
    return undefined;
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: normalizeHost(url.hostname), port };
}

function replyAndClose(socket: net.Socket, status: number, text: string, body: string): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}
