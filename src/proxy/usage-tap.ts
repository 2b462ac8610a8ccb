import type http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { parseJson } from './http-util.js';

export type TokenUsage = { inputTokens: number; outputTokens: number };

type WithUsage = { usage?: unknown } | undefined;

/** Usage from an SSE stream (cumulative counts: later replace earlier) or a JSON body; read at the end. */
export function tapUsage(res: http.IncomingMessage): () => TokenUsage | undefined {
  const plain = (res.headers['content-encoding'] ?? 'identity').toLowerCase() === 'identity';
  let kind = plain
    ? /text\/event-stream|json/i.exec(res.headers['content-type'] ?? '')?.[0].toLowerCase()
    : undefined;
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let usage: Record<string, number> | undefined;
  const apply = (u: unknown) => {
    if (!u || typeof u !== 'object') return;
    usage ??= {};
    for (const [k, v] of Object.entries(u)) if (typeof v === 'number' && Number.isFinite(v)) usage[k] = v;
  };
  const sseLine = (line: string) => {
    if (!line.startsWith('data:') || !/"message_(start|delta)"/.test(line)) return;
    const event = parseJson(line.slice(5)) as
      (WithUsage & { type?: unknown; message?: WithUsage }) | undefined;
    if (event?.type === 'message_start') apply(event.message?.usage);
    if (event?.type === 'message_delta') apply(event.usage);
  };
  res.on('data', (chunk: Buffer) => {
    if (!kind) return;
    pending += decoder.write(chunk);
    if (kind === 'json') {
      if (pending.length > 16 * 1024 * 1024) [kind, pending] = [undefined, ''];
      return;
    }
    const lines = pending.split('\n');
    pending = lines.pop()!;
    lines.forEach(sseLine);
    if (pending.length > 1024 * 1024) pending = '';
  });
  return () => {
    const rest = pending + decoder.end();
    if (kind === 'text/event-stream') sseLine(rest);
    if (kind === 'json') apply((parseJson(rest) as WithUsage)?.usage);
    if (!usage) return undefined;
    const { input_tokens = 0, cache_creation_input_tokens = 0, cache_read_input_tokens = 0 } = usage;
    return {
      inputTokens: input_tokens + cache_creation_input_tokens + cache_read_input_tokens,
      outputTokens: usage.output_tokens ?? 0,
    };
  };
}
