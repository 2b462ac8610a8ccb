import http from 'node:http';
import net from 'node:net';
import { logger } from '../logger.js';
import { checkTarget, type LookupFn } from './address-guard.js';
import { forwardableHeaders, guardServer, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader, normalizeHost, policyForGroup } from './network-policy.js';

export type TcpTarget = { host: string; port: number; family: 4 | 6 };

export interface EgressProxyDeps {
  configDir: string;
  lookup?: LookupFn;
  connectTcp?: (target: TcpTarget) => net.Socket; // so tests prove a refused target is never dialled
  interfaceAddresses?: () => readonly string[];
  maxConnections?: number;
}

const IDLE_MS = 10 * 60_000;
const USAGE_HINT =
  'This is an HTTP proxy: send absolute-URI requests (GET http://host/path) for http, CONNECT host:port for https.\n';
const refusal = (reason: string) => `Refused by the NanoClaw egress proxy: ${reason}\n`;

export function createEgressProxyServer(folder: string, deps: EgressProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const policy = () => policyForGroup(readPolicy(), folder);
  const connectTcp = deps.connectTcp ?? ((t: TcpTarget) => net.connect(t));
  const server = http.createServer();

  function connection(kind: 'http' | 'connect', target?: string) {
    const started = Date.now();
    const log: { target?: string; allowed: boolean; reason?: string; status?: number } = {
      target,
      allowed: false,
    };
    const decide = async (host: string, port: number) => {
      log.target = `${normalizeHost(host)}:${port}`;
      const decision = await checkTarget(host, port, policy(), deps.lookup, deps.interfaceAddresses?.());
      if (decision.allowed) log.allowed = true;
      else log.reason = decision.reason;
      return decision;
    };
    const unreachable = (err: Error) => {
      log.reason = `upstream error: ${err.message}`;
      return `The egress proxy could not reach ${log.target}: ${err.message}\n`;
    };
    const done = (upstream?: net.Socket, status = log.status) => {
      const bytes = { bytesOut: upstream?.bytesWritten ?? 0, bytesIn: upstream?.bytesRead ?? 0 };
      logger.info({ folder, kind, ...log, status, ...bytes, ms: Date.now() - started }, 'egress connection');
    };
    return { log, decide, unreachable, done };
  }

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
      socket.setTimeout(10_000, () => socket.destroy()); // in case no request ever comes
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
  const overLimit = (socket: net.Socket) =>
    refused.has(socket) &&
    refusal(
      `this group already has ${max} open connections, its limit (maxConnections in network-policy.json); close some and retry`,
    );

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const over = overLimit(req.socket);
    if (over) return sendBody(res, 429, 'text/plain', over, { connection: 'close' });
    forward(req, res).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress request failed');
      sendBody(res, 502, 'text/plain', 'egress proxy error\n');
    });
  });

  async function forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { log, decide, unreachable, done } = connection('http', req.url);
    let dialled: net.Socket | undefined;
    res.once('close', () => done(dialled, res.statusCode));
    const url = URL.canParse(req.url ?? '') ? new URL(req.url!) : undefined;
    if (url?.protocol !== 'http:') {
      log.reason = 'not an absolute http:// request';
      return sendBody(res, 400, 'text/plain', USAGE_HINT, { connection: 'close' });
    }
    const port = Number(url.port || 80);
    const to = await decide(url.hostname, port);
    if (!to.allowed) return sendBody(res, to.status, 'text/plain', refusal(to.reason));
    if (res.destroyed) return; // the client gave up while the name was resolving
    const upstream = http.request({
      method: req.method,
      path: url.pathname + url.search,
      // The absolute URI wins over the received Host (RFC 9112 §3.2.2).
      headers: { ...forwardableHeaders(req.headers), host: url.host, connection: 'close' },
      createConnection: () => (dialled = connectTcp({ host: to.address, port, family: to.family })),
    });
    upstream.setTimeout(IDLE_MS, () => upstream.destroy(new Error('idle timeout')));
    upstream.on('error', (err) => sendBody(res, 502, 'text/plain', unreachable(err)));
    relay(upstream, res);
    req.pipe(upstream);
  }

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    // The HTTP server no longer watches a CONNECT socket; an unhandled reset would crash the host.
    socket.on('error', () => undefined);
    const over = overLimit(socket);
    if (over) return replyAndClose(socket, 429, over);
    tunnel(req, socket, head).catch((err: unknown) => {
      logger.error({ folder, err }, 'egress tunnel failed');
      socket.destroy();
    });
  });

  async function tunnel(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const { log, decide, unreachable, done } = connection('connect', req.url);
    let upstream: net.Socket | undefined;
    socket.once('close', () => {
      upstream?.destroy();
      done(upstream);
    });
    const refuse = (status: number, reason: string, body = refusal(reason)) => {
      [log.status, log.reason] = [status, reason];
      replyAndClose(socket, status, body);
    };
    const target = parseAuthority(req.url ?? '');
    if (!target) return refuse(400, 'malformed CONNECT target', USAGE_HINT);
    const to = await decide(target.host, target.port);
    if (!to.allowed) return refuse(to.status, to.reason);
    if (socket.destroyed) return; // the client gave up while the name was resolving
    const up = (upstream = connectTcp({ host: to.address, port: target.port, family: to.family }));
    up.setTimeout(IDLE_MS, () => up.destroy(new Error('idle timeout')));
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    up.once('connect', () => {
      log.status = 200;
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(socket).pipe(up);
    });
    up.on('error', (err) => {
      const body = unreachable(err);
      if (log.status !== 200) refuse(502, log.reason!, body);
    });
    // pipe() passes a clean end on; a reset is passed on as a reset.
    up.once('close', (hadError: boolean) => hadError && log.status === 200 && socket.destroy());
  }

  return guardServer(server, folder, 'egress proxy');
}

/** `host:port` or `[v6]:port`, normalised as a URL host (0x7f000001 is 127.0.0.1). */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]]+):(\d{1,5})$/.exec(authority);
  const port = Number(match?.[2]);
  const url = `http://${match?.[1]}/`;
  if (!match || port < 1 || port > 65535 || !URL.canParse(url)) return undefined;
  return { host: normalizeHost(new URL(url).hostname), port };
}

function replyAndClose(socket: net.Socket, status: number, body: string): void {
  if (socket.destroyed) return;
  const head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nContent-Length: `;
  socket.end(`${head}${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
