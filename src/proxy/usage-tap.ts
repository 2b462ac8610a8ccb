import type http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { parseJson } from './http-util.js';

export type TokenUsage = { inputTokens: number; outputTokens: number };
type Event = { type?: string; usage?: unknown; message?: { usage?: unknown } } | undefined;

// SSE counts are cumulative: later replace earlier.
export function tapUsage(res: http.IncomingMessage): () => TokenUsage | undefined {
  const plain = /^(identity)?$/i.test(res.headers['content-encoding'] ?? '');
  let kind = plain ? /event-stream|json/i.exec(res.headers['content-type'] ?? '')?.[0].toLowerCase() : '';
  const decoder = new StringDecoder('utf8');
  const usage: Record<string, number> = {};
  let pending = '';
  const apply = (u: unknown) =>
    Object.entries(u ?? {}).forEach(
      ([k, v]) => typeof v === 'number' && Number.isFinite(v) && (usage[k] = v),
    );
  const sseLine = (line: string) => {
    if (!line.startsWith('data:') || !/"message_(start|delta)"/.test(line)) return;
    const event = parseJson(line.slice(5)) as Event;
    if (event?.type === 'message_start') apply(event.message?.usage);
    if (event?.type === 'message_delta') apply(event.usage);
  };
  res.on('data', (chunk: Buffer) => {
    if (!kind) return;
    pending += decoder.write(chunk);
    if (kind === 'json') {
      if (pending.length > 16 << 20) kind = pending = '';
      return;
    }
    const lines = pending.split('\n');
    pending = lines.pop()!;
    lines.forEach(sseLine);
    if (pending.length > 1 << 20) pending = '';
  });
  return () => {
    const rest = pending + decoder.end();
    if (kind === 'json') apply((parseJson(rest) as Event)?.usage);
    else if (kind) sseLine(rest);
    if (Object.keys(usage).length === 0) return undefined;
    const { input_tokens: i = 0, cache_creation_input_tokens: c = 0, cache_read_input_tokens: r = 0 } = usage;
    return { inputTokens: i + c + r, outputTokens: usage.output_tokens ?? 0 };
  };
}
