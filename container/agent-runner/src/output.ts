import { OUTPUT_END, OUTPUT_START } from './contract/ipc.js';

/** stdout carries only the framed results the host parses; everything else of ours goes to stderr. */

/** The host's AgentOutput. */
export interface RunnerOutput {
  status: 'success' | 'error';
  result: string | null;
  newSessionId?: string;
  error?: string;
}

export function writeOutput(output: RunnerOutput): void {
  process.stdout.write(`${OUTPUT_START}\n${JSON.stringify(output)}\n${OUTPUT_END}\n`);
}

export function log(message: string, context?: Record<string, unknown>): void {
  process.stderr.write(`[agent-runner] ${message}${context ? ` ${JSON.stringify(context)}` : ''}\n`);
}
