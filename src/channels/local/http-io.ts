import type http from 'node:http';

export const MAX_BODY_BYTES = 1024 * 1024;

/** Thrown by a handler; the server answers `{ error: message }` with the status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(text);
}

export async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'];
  if (type?.split(';')[0]?.trim().toLowerCase() !== 'application/json')
    throw new HttpError(415, `content-type must be application/json (got ${type ?? 'none'})`);
  const body = Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES ? undefined : await collect(req);
  if (!body) throw new HttpError(413, `body is too large (limit ${MAX_BODY_BYTES} bytes)`);
  const text = body.toString('utf8');
  if (!text.trim()) throw new HttpError(400, 'body is empty: expected a JSON object');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `invalid JSON: ${(err as Error).message}`);
  }
}

function collect(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Past the limit the rest is read and dropped, not the socket reset, so the client gets the 413.
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      else resolve(undefined);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
