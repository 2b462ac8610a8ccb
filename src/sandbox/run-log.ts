import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../logger.js';
import type { AgentInput, AgentOutput } from '../types.js';
import type { MountSpec } from './runtime.js';
import type { SandboxRunOutcome } from './sandbox-run.js';

export interface RunLogEntry {
  logsDir: string;
  sandboxName: string;
  runtime: string;
  startedAt: number;
  durationMs: number;
  input: AgentInput;
  mounts: MountSpec[];
  envKeys: string[];
  outcome: SandboxRunOutcome | null;
  result: AgentOutput;
}

function describeMount(m: MountSpec): string {
  if (m.mask) return `  (hidden ${m.mask}) ${m.containerPath}`;
  return `  ${m.hostPath} -> ${m.containerPath} (${m.readonly ? 'ro' : 'rw'})`;
}

function render(entry: RunLogEntry): string {
  const { input, outcome, result } = entry;
  // The prompt is the user's conversation: its length is enough to debug a run.
  const inputSummary = {
    groupFolder: input.groupFolder,
    chatJid: input.chatJid,
    isMain: input.isMain,
    isScheduledTask: input.isScheduledTask ?? false,
    sessionId: input.sessionId ?? null,
    promptLength: input.prompt.length,
  };
  const lines = [
    '=== Sandbox run ===',
    `Sandbox: ${entry.sandboxName}`,
    `Runtime: ${entry.runtime}`,
    `Started: ${new Date(entry.startedAt).toISOString()}`,
    `Duration: ${entry.durationMs} ms`,
    `Exit code: ${outcome?.exitCode ?? 'none'}${outcome?.signal ? ` (signal ${outcome.signal})` : ''}`,
    `Timed out: ${outcome?.timedOut ?? false}`,
    `Output over cap: ${outcome?.overflowed ?? false}`,
    `Outputs: ${outcome?.outputs.length ?? 0}`,
    `Status: ${result.status}${result.error ? ` — ${result.error}` : ''}`,
    `Input: ${JSON.stringify(inputSummary)}`,
    `Env: ${entry.envKeys.join(', ')}`,
    'Mounts:',
    ...entry.mounts.map(describeMount),
    '',
    '=== stderr (tail) ===',
    outcome?.stderrTail ?? '',
  ];
  if (result.status === 'error') lines.push('', '=== stdout (tail) ===', outcome?.stdoutTail ?? '');
  return `${lines.join('\n')}\n`;
}

/**
 * One file per run in groups/<folder>/logs/. The agent can write into its group folder, so the
 * logs dir is checked not to be a planted symlink and the file is created exclusively.
 */
export function writeRunLog(entry: RunLogEntry): string | null {
  try {
    const stat = fs.lstatSync(entry.logsDir, { throwIfNoEntry: false });
    if (stat && !stat.isDirectory()) fs.rmSync(entry.logsDir, { force: true });
    fs.mkdirSync(entry.logsDir, { recursive: true });
    const stamp = new Date(entry.startedAt).toISOString().replace(/:/g, '-');
    let file = path.join(entry.logsDir, `${stamp}.log`);
    for (let n = 1; fs.existsSync(file); n++) file = path.join(entry.logsDir, `${stamp}-${n}.log`);
    fs.writeFileSync(file, render(entry), { flag: 'wx', mode: 0o644 });
    return file;
  } catch (err) {
    logger.warn({ logsDir: entry.logsDir, err: String(err) }, 'could not write run log');
    return null;
  }
}
