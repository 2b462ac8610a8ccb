// zod 3 API: loads much faster than zod 4's, and this is on every cold start (see nanoclaw-tools.ts).
import { z } from 'zod/v3';

/** The one JSON object the host writes to stdin. It never carries secrets. */
export const agentInputSchema = z.object({
  prompt: z.string().min(1),
  sessionId: z.string().min(1).optional(),
  groupFolder: z.string().min(1),
  chatJid: z.string().min(1),
  isMain: z.boolean(),
  isScheduledTask: z.boolean().optional(),
  assistantName: z.string().min(1),
});
export type AgentInput = z.infer<typeof agentInputSchema>;

export type ParsedInput = { ok: true; input: AgentInput } | { ok: false; error: string };

export function parseAgentInput(raw: string): ParsedInput {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `stdin is not JSON: ${(err as Error).message}` };
  }
  const parsed = agentInputSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    return { ok: false, error: `invalid input: ${problems}` };
  }
  return { ok: true, input: parsed.data };
}

/**
 * Reads the input object from stdin: done at end of stream, or as soon as the data read so far is
 * one complete JSON value (so a host that keeps stdin open does not stall the start).
 */
export function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const finish = () => {
      stream.removeListener('data', onData);
      stream.removeListener('end', finish);
      stream.removeListener('error', reject);
      stream.pause();
      resolve(data);
    };
    const onData = (chunk: string) => {
      data += chunk;
      try {
        JSON.parse(data);
        finish();
      } catch {
        // not complete yet
      }
    };
    stream.setEncoding('utf8');
    stream.on('data', onData);
    stream.on('end', finish);
    stream.on('error', reject);
  });
}

/** Task prompts are marked so the agent knows nobody is waiting on the other side. */
export function buildInitialPrompt(input: AgentInput): string {
  if (!input.isScheduledTask) return input.prompt;
  return (
    '[SCHEDULED TASK - This is an automatic scheduled task, not a message from the user. ' +
    'Use the send_message tool if the user should hear about the outcome.]\n\n' +
    input.prompt
  );
}
