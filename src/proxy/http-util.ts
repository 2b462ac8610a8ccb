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

export function guardServer(server: http.Server, folder: string, what: string): http.Server {
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('error', (err) => logger.error({ folder, err }, `${what} server error`));
  return server;
}

/** Past `maxBytes` (declared or received) it gives up and drains. */
export function readBody(
  req: http.IncomingMessage,
  maxBytes: number,
): Promise<Buffer | 'too large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => {
      chunks.length = 0;
      req.resume();
      resolve('too large');
    };
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) return tooLarge();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) tooLarge();
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('close', () => resolve('aborted'));
  });
}

/** undefined when the text is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
