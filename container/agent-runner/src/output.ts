import { OUTPUT_END, OUTPUT_START, type SandboxOutput } from './contract/ipc.js';

export const writeOutput = (output: SandboxOutput) =>
  process.stdout.write(`${OUTPUT_START}\n${JSON.stringify(output)}\n${OUTPUT_END}\n`);

export const log = (message: string, context?: object) =>
  process.stderr.write(`[agent-runner] ${message}${context ? ` ${JSON.stringify(context)}` : ''}\n`);
