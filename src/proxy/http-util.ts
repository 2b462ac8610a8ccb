import type http from 'node:http';

// A proxy must not forward these (RFC 9110 §7.6.1).
const HOP_BY_HOP = /^(connection|keep-alive|proxy-\w+|te|trailer|transfer-encoding|upgrade)$/;

export function forwardableHeaders(headers: http.IncomingHttpHeaders, drop: string[] = []) {
  const named = `,${String(headers.connection).replace(/\s/g, '').toLowerCase()},`;
  const kept = Object.entries(headers).filter(
    ([k, v]) => v !== undefined && !HOP_BY_HOP.test(k) && !named.includes(`,${k},`) && !drop.includes(k),
  );
  return Object.fromEntries(kept) as http.OutgoingHttpHeaders;
}

export function sendBody(res: http.ServerResponse, status: number, body: unknown, headers = {}): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  const [type, text] =
    typeof body === 'string' ? ['text/plain', body] : ['application/json', JSON.stringify(body)];
  res
    .writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(text) })
    .end(text);
}

// An answer cut short upstream is cut short here too, not ended cleanly.
export function relay(
  upstream: http.ClientRequest,
  res: http.ServerResponse,
  onResponse?: (upstreamRes: http.IncomingMessage) => void,
): void {
  upstream.on('response', (upstreamRes) => {
    onResponse?.(upstreamRes);
    try {
      res.writeHead(upstreamRes.statusCode ?? 502, forwardableHeaders(upstreamRes.headers));
      res.flushHeaders(); // the SDK starts reading at the headers
    } catch {
      upstream.destroy(); // a status or header Node will not send
      return void res.destroy();
    }
    upstreamRes.on('close', () => upstreamRes.complete || res.destroy());
    upstreamRes.pipe(res);
  });
  res.once('close', () => res.writableFinished || upstream.destroy());
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
