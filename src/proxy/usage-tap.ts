import { StringDecoder } from 'node:string_decoder';
import { parseJson } from './http-util.js';

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

const MAX_LINE_CHARS = 1024 * 1024;
const MAX_JSON_BODY_CHARS = 16 * 1024 * 1024;

type Usage = { usage?: unknown } | undefined;

/** Token usage from SSE (counts are cumulative: later values replace earlier ones) or JSON. */
export class UsageTap {
  private mode: 'sse' | 'json' | 'none';
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private usage: Record<string, number> | undefined;

  constructor(contentType = '', contentEncoding = 'identity') {
    const kind = /text\/event-stream/i.test(contentType)
      ? 'sse'
      : /json/i.test(contentType)
        ? 'json'
        : 'none';
    this.mode = contentEncoding.toLowerCase() === 'identity' ? kind : 'none';
  }

  write(chunk: Buffer): void {
    if (this.mode === 'none') return;
    this.pending += this.decoder.write(chunk);
    if (this.mode === 'json') {
      if (this.pending.length > MAX_JSON_BODY_CHARS) [this.mode, this.pending] = ['none', ''];
      return;
    }
    const lines = this.pending.split('\n');
    this.pending = lines.pop()!;
    for (const line of lines) this.sseLine(line);
    if (this.pending.length > MAX_LINE_CHARS) this.pending = '';
  }

  /** Call once, at the end. */
  finish(): TokenUsage | undefined {
    const rest = this.pending + this.decoder.end();
    if (this.mode === 'sse') this.sseLine(rest);
    if (this.mode === 'json') this.apply((parseJson(rest) as Usage)?.usage);
    const u = this.usage;
    if (!u) return undefined;
    return {
      inputTokens:
        (u.input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0),
      outputTokens: u.output_tokens ?? 0,
    };
  }

  private sseLine(line: string): void {
    if (!line.startsWith('data:') || !/"message_(start|delta)"/.test(line)) return;
    const event = parseJson(line.slice(5)) as (Usage & { type?: unknown; message?: Usage }) | undefined;
    this.apply(
      event?.type === 'message_start'
        ? event.message?.usage
        : event?.type === 'message_delta'
          ? event.usage
          : undefined,
    );
  }

  private apply(usage: unknown): void {
    if (!usage || typeof usage !== 'object') return;
    this.usage ??= {};
    for (const [key, value] of Object.entries(usage)) {
      if (typeof value === 'number' && Number.isFinite(value)) this.usage[key] = value;
    }
  }
}
