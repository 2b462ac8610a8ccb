import type http from 'node:http';

/** Largest request body the local channel reads; a chat message is far smaller. */
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

export function sendError(res: http.ServerResponse, status: number, error: string): void {
  sendJson(res, status, { error });
}

export type BodyResult = { ok: true; value: unknown } | { ok: false; status: number; error: string };

function isJsonContentType(header: string | undefined): boolean {
  const mediaType = header?.split(';')[0]?.trim().toLowerCase();
  return mediaType === 'application/json';
}

/**
 * Reads and parses a JSON request body. Stops reading at MAX_BODY_BYTES so a huge upload costs
 * nothing, and says precisely what is wrong otherwise.
 */
export async function readJsonBody(req: http.IncomingMessage): Promise<BodyResult> {
  if (!isJsonContentType(req.headers['content-type'])) {
    return {
      ok: false,
      status: 415,
      error: `content-type must be application/json (got ${req.headers['content-type'] ?? 'none'})`,
    };
  }
  const tooLarge: BodyResult = {
    ok: false,
    status: 413,
    error: `body is too large (limit ${MAX_BODY_BYTES} bytes)`,
  };
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return tooLarge;

  const body = await collect(req);
  if (body === undefined) return tooLarge;
  const text = body.toString('utf8');
  if (text.trim() === '') return { ok: false, status: 400, error: 'body is empty: expected a JSON object' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, status: 400, error: `invalid JSON: ${(err as Error).message}` };
  }
}

/**
 * Collects the body, or undefined once it passes the limit. The rest is drained rather than the
 * socket torn down, so the client still reads the 413 instead of a connection reset.
 */
function collect(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.off('end', onEnd);
      req.resume();
      resolve(undefined);
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}
