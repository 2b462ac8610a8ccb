import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { OUTPUT_END, OUTPUT_START } from '../contract/ipc.js';
import { logger } from '../logger.js';
import type { AgentOutput } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';

export const MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

const agentOutputSchema = z.object({
  status: z.enum(['success', 'error']),
  result: z.string().nullable(),
  newSessionId: z.string().optional(),
  error: z.string().optional(),
});

/** Framed results from stdout; a marker may be split across chunks, even inside a character. */
export class AgentOutputParser {
  private readonly decoder = new StringDecoder('utf8');
  /** Starts at OUTPUT_START once a frame has begun. */
  private buffer = '';
  /** So a big frame is not rescanned for the end marker. */
  private endSearchFrom = 0;
  private bytes = 0;
  overflowed = false;

  feed(chunk: Buffer | string): AgentOutput[] {
    if (this.overflowed) return [];
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.bytes += data.length;
    if (this.bytes > MAX_OUTPUT_BYTES) {
      this.overflowed = true;
      this.buffer = '';
      logger.warn({ maxBytes: MAX_OUTPUT_BYTES }, 'sandbox output over the cap');
      return [];
    }
    this.buffer += this.decoder.write(data);
    const outputs: AgentOutput[] = [];
    for (;;) {
      const start = this.buffer.indexOf(OUTPUT_START);
      if (start === -1) {
        // Keep only a tail that could still grow into a start marker.
        this.buffer = this.buffer.slice(-(OUTPUT_START.length - 1));
        return outputs;
      }
      this.buffer = this.buffer.slice(start);
      const end = this.buffer.indexOf(OUTPUT_END, Math.max(OUTPUT_START.length, this.endSearchFrom));
      if (end === -1) {
        this.endSearchFrom = this.buffer.length - OUTPUT_END.length + 1;
        return outputs;
      }
      outputs.push(parseFrame(this.buffer.slice(OUTPUT_START.length, end)));
      this.buffer = this.buffer.slice(end + OUTPUT_END.length);
      this.endSearchFrom = 0;
    }
  }
}

function parseFrame(text: string): AgentOutput {
  let json: unknown;
  try {
    json = JSON.parse(text.trim());
  } catch (err) {
    logger.warn({ err: String(err), length: text.length }, 'malformed JSON in sandbox output');
    return { status: 'error', result: null, error: `Malformed output from the agent: ${String(err)}` };
  }
  const parsed = agentOutputSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const problems = zodProblems(parsed.error);
  logger.warn({ problems }, 'invalid sandbox output');
  return { status: 'error', result: null, error: `Invalid output from the agent: ${problems}` };
}
