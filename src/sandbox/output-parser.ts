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
  private buffer = '';
  /** So a big frame is not rescanned for the end marker. */
  private endSearchFrom = 0;
  private bytes = 0;
  overflowed = false;

  feed(chunk: Buffer | string): AgentOutput[] {
    if (this.overflowed) return [];
    const data = Buffer.from(chunk);
    if ((this.bytes += data.length) > MAX_OUTPUT_BYTES) {
      this.overflowed = true;
      this.buffer = '';
      logger.warn({ maxBytes: MAX_OUTPUT_BYTES }, 'sandbox output over the cap');
      return [];
    }
    this.buffer += this.decoder.write(data);
    const outputs: AgentOutput[] = [];
    for (let start; (start = this.buffer.indexOf(OUTPUT_START)) !== -1;) {
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
    this.buffer = this.buffer.slice(-(OUTPUT_START.length - 1));
    return outputs;
  }
}

function parseFrame(text: string): AgentOutput {
  let problem: string;
  try {
    const parsed = agentOutputSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
    problem = `Invalid output from the agent: ${zodProblems(parsed.error)}`;
  } catch (err) {
    problem = `Malformed output from the agent: ${String(err)}`;
  }
  logger.warn({ problem, length: text.length }, 'bad sandbox output');
  return { status: 'error', result: null, error: problem };
}
