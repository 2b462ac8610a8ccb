import type http from 'node:http';
import fs from 'node:fs';
import type net from 'node:net';
import { logger } from '../logger.js';

/** Headers that describe one connection, not the message; a proxy must not forward them (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * A copy of `headers` without hop-by-hop headers, without any header the Connection header names,
 * and without the `drop` list (lower-case names).
 */
export function forwardableHeaders(
  headers: http.IncomingHttpHeaders,
  drop: readonly string[] = [],
): http.OutgoingHttpHeaders {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || named.includes(name) || drop.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Ends a response unless the client is already gone; never throws. `close` ends the connection too. */
export function sendBody(
  res: http.ServerResponse,
  status: number,
  contentType: string,
  body: string,
  opts: { close?: boolean } = {},
): void {
  try {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(body),
      ...(opts.close ? { connection: 'close' } : {}),
    });
    res.end(body);
  } catch (err) {
    logger.warn({ err }, 'proxy could not send a response');
    res.destroy();
  }
}

/** sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

/**
 * Listens on a unix socket: removes a stale socket file first (a crashed run leaves one behind and
 * listen would fail with EADDRINUSE), and makes the socket connectable by the sandbox user, who only
 * sees the directory through a read-only mount of that one group's proxy folder.
 */
export async function listenOnUnixSocket(
  server: net.Server,
  socketPath: string,
  uid?: number,
): Promise<void> {
  const length = Buffer.byteLength(socketPath);
  if (length > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `socket path ${socketPath} is ${length} bytes; unix sockets allow ${MAX_SOCKET_PATH_BYTES}: use a shorter NANOCLAW_HOME`,
    );
  }
  const existing = await fs.promises.lstat(socketPath).catch(() => undefined);
  if (existing?.isSocket()) await fs.promises.unlink(socketPath);
  else if (existing) throw new Error(`${socketPath} exists and is not a socket; move it away`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.promises.chmod(socketPath, 0o666);
  if (uid !== undefined) await chownQuietly(socketPath, uid);
}

/** chown needs root; without it the 0666 socket in a 0755 directory is still connectable. */
export async function chownQuietly(file: string, uid: number): Promise<void> {
  try {
    await fs.promises.chown(file, uid, uid);
  } catch (err) {
    logger.debug({ file, uid, err: (err as Error).message }, 'proxy chown skipped');
  }
}

/** Closes a server and destroys its open connections (streams and tunnels would otherwise hold it open). */
export function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      for (const s of sockets) s.destroy();
      resolve();
      return;
    }
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}

/** Remembers a server's sockets so that stop() can end long streams and tunnels. */
export function trackSockets(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

export type BodyResult = { ok: true; body: Buffer } | { ok: false; problem: 'too large' | 'aborted' };

/**
 * Reads a whole request body, giving up past `maxBytes` (checked on the declared length first, then
 * on what actually arrives) so a sandbox cannot make the host buffer without bound.
 */
export function readBody(req: http.IncomingMessage, maxBytes: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) {
      req.resume();
      resolve({ ok: false, problem: 'too large' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyResult) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        req.resume();
        settle({ ok: false, problem: 'too large' });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => settle({ ok: true, body: Buffer.concat(chunks) }));
    req.on('error', () => settle({ ok: false, problem: 'aborted' }));
    req.on('close', () => settle({ ok: false, problem: 'aborted' }));
  });
}
