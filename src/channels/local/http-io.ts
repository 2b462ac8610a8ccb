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

export const NO_STORE = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...NO_STORE, 'Content-Type': 'application/json; charset=utf-8' }).end(text);
}

export const quote = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

export function decode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `${what} is not valid percent-encoding: ${quote(raw)}`);
  }
}

export async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'];
  if (type?.split(';')[0]!.trim().toLowerCase() !== 'application/json')
    throw new HttpError(415, `content-type must be application/json (got ${type ?? 'none'})`);
  const tooLarge = new HttpError(413, `body is too large (limit ${MAX_BODY_BYTES} bytes)`);
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) throw tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  // Past the limit the rest is read and dropped, not the socket reset, so the client gets the 413.
  for await (const chunk of req as AsyncIterable<Buffer>)
    if ((size += chunk.length) <= MAX_BODY_BYTES) chunks.push(chunk);
  if (size > MAX_BODY_BYTES) throw tooLarge;
  const text = Buffer.concat(chunks).toString();
  if (!text.trim()) throw new HttpError(400, 'body is empty: expected a JSON object');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `invalid JSON: ${(err as Error).message}`);
  }
}
