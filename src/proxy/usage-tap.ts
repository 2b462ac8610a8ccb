import type http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { parseJson } from './http-util.js';

type Event = { type?: string; usage?: object; message?: { usage?: object } } | undefined;

// SSE counts are cumulative: later replace earlier.
export function tapUsage(res: http.IncomingMessage) {
  const { 'content-encoding': encoding = '', 'content-type': type = '' } = res.headers;
  let kind = /^(identity)?$/i.test(encoding) ? /event-stream|json/i.exec(type)?.[0].toLowerCase() : '';
  const decoder = new StringDecoder('utf8');
  const usage: Record<string, number> = {};
  let pending = '';
  const apply = (u?: object) =>
    Object.entries(u ?? {}).forEach(([k, v]) => Number.isFinite(v) && (usage[k] = v as number));
  const sseLine = (line: string) => {
    if (!line.startsWith('data:') || !/"message_(start|delta)"/.test(line)) return;
    const event = parseJson(line.slice(5)) as Event;
    if (/^message_(start|delta)$/.test(event?.type ?? '')) apply(event!.message?.usage ?? event!.usage);
  };
  res.on('data', (chunk: Buffer) => {
    if (!kind) return;
    pending += decoder.write(chunk);
    if (kind !== 'json') {
      const lines = pending.split('\n');
      pending = lines.pop()!;
      lines.forEach(sseLine);
    }
    if (pending.length > 16 << 20) kind = pending = '';
  });
  return () => {
    const rest = pending + decoder.end();
    if (kind === 'json') apply((parseJson(rest) as Event)?.usage);
    else if (kind) sseLine(rest);
    if (!Object.keys(usage).length) return undefined;
    const { input_tokens: i = 0, cache_creation_input_tokens: c = 0, cache_read_input_tokens: r = 0 } = usage;
    return { inputTokens: i + c + r, outputTokens: usage.output_tokens ?? 0 };
  };
}
