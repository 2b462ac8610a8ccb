export const OUTPUT_START_MARKER = '---NANOCLAW_OUTPUT_START---';
export const OUTPUT_END_MARKER = '---NANOCLAW_OUTPUT_END---';

/** One result for the host, in the shape of the host's AgentOutput. */
export interface RunnerOutput {
  status: 'success' | 'error';
  result: string | null;
  newSessionId?: string;
  error?: string;
}

export function frameOutput(output: RunnerOutput): string {
  return `${OUTPUT_START_MARKER}\n${JSON.stringify(output)}\n${OUTPUT_END_MARKER}\n`;
}

export function writeOutput(output: RunnerOutput): void {
  process.stdout.write(frameOutput(output));
}
