import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { logger } from '../logger.js';
import type { AgentOutput } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';
import { OUTPUT_END, OUTPUT_START } from '../contract/ipc.js';

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
  private buffer = '';
  private inFrame = false;
  /** Where to resume looking for the end marker, so a big frame is not rescanned. */
  private endSearchFrom = 0;
  private bytes = 0;
  overflowed = false;

  constructor(private readonly maxBytes = MAX_OUTPUT_BYTES) {}

  feed(chunk: Buffer | string): AgentOutput[] {
    if (this.overflowed) return [];
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.bytes += data.length;
    if (this.bytes > this.maxBytes) {
      this.overflowed = true;
      this.buffer = '';
      logger.warn({ maxBytes: this.maxBytes }, 'sandbox output over the cap');
      return [];
    }
    this.buffer += this.decoder.write(data);
    const outputs: AgentOutput[] = [];
    for (;;) {
      if (!this.inFrame) {
        const start = this.buffer.indexOf(OUTPUT_START);
        if (start === -1) {
          // Keep only a tail that could still grow into a start marker.
          this.buffer = this.buffer.slice(-(OUTPUT_START.length - 1));
          return outputs;
        }
        this.buffer = this.buffer.slice(start + OUTPUT_START.length);
        this.inFrame = true;
        this.endSearchFrom = 0;
      }
      const end = this.buffer.indexOf(OUTPUT_END, this.endSearchFrom);
      if (end === -1) {
        this.endSearchFrom = Math.max(0, this.buffer.length - OUTPUT_END.length + 1);
        return outputs;
      }
      outputs.push(parseFrame(this.buffer.slice(0, end)));
      this.buffer = this.buffer.slice(end + OUTPUT_END.length);
      this.inFrame = false;
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
