import { OUTPUT_END, OUTPUT_START } from './contract/ipc.js';

/** The host's AgentOutput. stdout carries only these frames. */
export interface RunnerOutput {
  status: 'success' | 'error';
  result: string | null;
  newSessionId?: string;
  error?: string;
}

export const writeOutput = (output: RunnerOutput) =>
  process.stdout.write(`${OUTPUT_START}\n${JSON.stringify(output)}\n${OUTPUT_END}\n`);

export const log = (message: string, context?: object) =>
  process.stderr.write(`[agent-runner] ${message}${context ? ` ${JSON.stringify(context)}` : ''}\n`);
