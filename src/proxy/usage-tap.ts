import { StringDecoder } from 'node:string_decoder';

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/** Guards against unbounded buffering if an upstream sends something unexpected. */
const MAX_LINE_CHARS = 1024 * 1024;
const MAX_JSON_BODY_CHARS = 16 * 1024 * 1024;

interface UsageFields {
  input_tokens?: unknown;
  cache_creation_input_tokens?: unknown;
  cache_read_input_tokens?: unknown;
  output_tokens?: unknown;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Reads token usage from a Messages API response as it streams past, without holding the stream
 * back: SSE (`message_start` carries input and cache tokens, `message_delta` the cumulative output
 * tokens) or a plain JSON body with `usage`. Compressed bodies are not parsed (the proxy asks the
 * upstream for identity encoding, so that should not happen).
 */
export class UsageTap {
  private readonly mode: 'sse' | 'json' | 'none';
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private overflowed = false;
  private seen = false;
  private input = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  private output = 0;

  constructor(contentType: string | undefined, contentEncoding: string | undefined) {
    const encoded = contentEncoding !== undefined && contentEncoding.toLowerCase() !== 'identity';
    const type = (contentType ?? '').toLowerCase();
    this.mode = encoded
      ? 'none'
      : type.includes('text/event-stream')
        ? 'sse'
        : type.includes('json')
          ? 'json'
          : 'none';
  }

  write(chunk: Buffer): void {
    if (this.mode === 'none' || this.overflowed) return;
    this.pending += this.decoder.write(chunk);
    if (this.mode === 'json') {
      if (this.pending.length > MAX_JSON_BODY_CHARS) this.overflow();
      return;
    }
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) !== -1) {
      this.sseLine(this.pending.slice(0, newline).replace(/\r$/, ''));
      this.pending = this.pending.slice(newline + 1);
    }
    if (this.pending.length > MAX_LINE_CHARS) this.pending = '';
  }

  /** The usage seen so far, or undefined if the response carried none. */
  finish(): TokenUsage | undefined {
    if (this.mode === 'json' && !this.overflowed) {
      try {
        const body = JSON.parse(this.pending + this.decoder.end()) as { usage?: UsageFields };
        if (body && typeof body === 'object' && body.usage) this.apply(body.usage, true);
      } catch {
        // Not JSON after all (or truncated): nothing to count.
      }
      this.pending = '';
    } else if (this.mode === 'sse' && this.pending) {
      this.sseLine(this.pending);
      this.pending = '';
    }
    if (!this.seen) return undefined;
    const i = this.input;
    return {
      inputTokens: i.input_tokens + i.cache_creation_input_tokens + i.cache_read_input_tokens,
      outputTokens: this.output,
    };
  }

  private overflow(): void {
    this.overflowed = true;
    this.pending = '';
  }

  private sseLine(line: string): void {
    if (!line.startsWith('data:')) return;
    // Only two event types carry usage; skip parsing the many content deltas.
    if (!line.includes('"message_start"') && !line.includes('"message_delta"')) return;
    let event: { type?: unknown; message?: { usage?: UsageFields }; usage?: UsageFields };
    try {
      event = JSON.parse(line.slice(5).trim()) as typeof event;
    } catch {
      return;
    }
    if (event?.type === 'message_start' && event.message?.usage) this.apply(event.message.usage, true);
    else if (event?.type === 'message_delta' && event.usage) this.apply(event.usage, false);
  }

  /** message_delta counts are cumulative, so a later value replaces an earlier one. */
  private apply(usage: UsageFields, isStart: boolean): void {
    this.seen = true;
    for (const key of ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
      const value = num(usage[key]);
      if (value !== undefined) this.input[key] = value;
    }
    const out = num(usage.output_tokens);
    if (out !== undefined && (!isStart || this.output === 0)) this.output = out;
  }
}
