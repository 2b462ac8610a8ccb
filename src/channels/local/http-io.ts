import type http from 'node:http';

export const MAX_BODY_BYTES = 1024 * 1024;

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

export const sendError = (res: http.ServerResponse, status: number, error: string) =>
  sendJson(res, status, { error });

type BodyResult = { ok: true; value: unknown } | { ok: false; status: number; error: string };

const fail = (status: number, error: string): BodyResult => ({ ok: false, status, error });

export async function readJsonBody(req: http.IncomingMessage): Promise<BodyResult> {
  const type = req.headers['content-type'];
  if (type?.split(';')[0]?.trim().toLowerCase() !== 'application/json')
    return fail(415, `content-type must be application/json (got ${type ?? 'none'})`);
  const tooLarge = Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES;
  const body = tooLarge ? undefined : await collect(req);
  if (!body) return fail(413, `body is too large (limit ${MAX_BODY_BYTES} bytes)`);
  const text = body.toString('utf8');
  if (!text.trim()) return fail(400, 'body is empty: expected a JSON object');
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return fail(400, `invalid JSON: ${(err as Error).message}`);
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
