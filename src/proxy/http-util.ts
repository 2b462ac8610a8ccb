import type http from 'node:http';
import { logger } from '../logger.js';

/** A proxy must not forward these (RFC 9110 §7.6.1). */
const HOP_BY_HOP = /^(connection|keep-alive|proxy-\w+|te|trailer|transfer-encoding|upgrade)$/;

export function forwardableHeaders(
  headers: http.IncomingHttpHeaders,
  drop: readonly string[] = [],
): http.OutgoingHttpHeaders {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase());
  return Object.fromEntries(
    Object.entries(headers).filter(
      ([name, value]) =>
        value !== undefined && !HOP_BY_HOP.test(name) && !named.includes(name) && !drop.includes(name),
    ),
  );
}

export function sendBody(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: http.OutgoingHttpHeaders = {},
): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Streams the answer back; one cut short upstream is cut short here too, not ended cleanly. */
export function relay(
  upstream: http.ClientRequest,
  res: http.ServerResponse,
  onResponse?: (upstreamRes: http.IncomingMessage) => void,
): void {
  upstream.on('response', (upstreamRes) => {
    try {
      res.writeHead(upstreamRes.statusCode ?? 502, forwardableHeaders(upstreamRes.headers));
      res.flushHeaders(); // the SDK starts reading at the headers
    } catch {
      upstream.destroy(); // a status or header Node will not send
      return void res.destroy();
    }
    onResponse?.(upstreamRes);
    upstreamRes.on('close', () => upstreamRes.complete || res.destroy());
    upstreamRes.pipe(res);
  });
  res.once('close', () => res.writableFinished || upstream.destroy());
}

export function guardServer(server: http.Server, folder: string, what: string): http.Server {
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('error', (err) => logger.error({ folder, err }, `${what} server error`));
  return server;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
