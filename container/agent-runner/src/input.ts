import { z } from 'zod/v3';

/** The one JSON object the host writes to stdin. It never carries secrets. */
const agentInputSchema = z.object({
  prompt: z.string().min(1),
  sessionId: z.string().min(1).optional(),
  groupFolder: z.string().min(1),
  chatJid: z.string().min(1),
  isMain: z.boolean(),
  isScheduledTask: z.boolean().optional(),
  assistantName: z.string().min(1),
});
export type AgentInput = z.infer<typeof agentInputSchema>;

export function parseAgentInput(raw: string): { ok: true; input: AgentInput } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `stdin is not JSON: ${(err as Error).message}` };
  }
  const parsed = agentInputSchema.safeParse(json);
  if (parsed.success) return { ok: true, input: parsed.data };
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return { ok: false, error: `invalid input: ${problems.join('; ')}` };
}

/** Done at end of stream, or once the data is one complete JSON value (stdin may stay open). */
export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  let data = '';
  for await (const chunk of stream.setEncoding('utf8')) {
    data += chunk as string;
    try {
      JSON.parse(data);
      break;
    } catch {
      // not complete yet
    }
  }
  return data;
}

/** Task prompts are marked so the agent knows nobody is waiting on the other side. */
export function buildInitialPrompt(input: AgentInput): string {
  if (!input.isScheduledTask) return input.prompt;
  return `[SCHEDULED TASK - This is an automatic scheduled task, not a message from the user. Use the send_message tool if the user should hear about the outcome.]\n\n${input.prompt}`;
}
