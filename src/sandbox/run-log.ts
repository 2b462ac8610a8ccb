import { logger } from '../logger.js';
import { withSafeDir } from '../safe-fs.js';
import type { AgentInput, AgentOutput } from '../types.js';
import type { MountSpec } from './runtime.js';
import type { SandboxRunOutcome } from './sandbox-runner.js';

interface RunLogEntry {
  groupsDir: string;
  folder: string;
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

function render({ input, outcome: o, result, ...entry }: RunLogEntry): string {
  // Not the prompt (the user's conversation): its length will do.
  const { groupFolder, chatJid, isMain, isScheduledTask = false, sessionId = null } = input;
  const summary = {
    groupFolder,
    chatJid,
    isMain,
    isScheduledTask,
    sessionId,
    promptLength: input.prompt.length,
  };
  const lines = [
    '=== Sandbox run ===',
    `Sandbox: ${entry.sandboxName}`,
    `Runtime: ${entry.runtime}`,
    `Started: ${new Date(entry.startedAt).toISOString()}`,
    `Duration: ${entry.durationMs} ms`,
    `Exit code: ${o?.exitCode ?? 'none'}${o?.signal ? ` (signal ${o.signal})` : ''}`,
    `Timed out: ${o?.timedOut ?? false}`,
    `Output over cap: ${o?.overflowed ?? false}`,
    `Outputs: ${o?.outputs.length ?? 0}`,
    `Status: ${result.status}${result.error ? ` — ${result.error}` : ''}`,
    `Input: ${JSON.stringify(summary)}`,
    `Env: ${entry.envKeys.join(', ')}`,
    'Mounts:',
    ...entry.mounts.map((m) =>
      m.mask
        ? `  (hidden ${m.mask}) ${m.containerPath}`
        : `  ${m.hostPath} -> ${m.containerPath} (${m.readonly ? 'ro' : 'rw'})`,
    ),
    '',
    '=== stderr (tail) ===',
    o?.stderrTail ?? '',
  ];
  if (result.status === 'error') lines.push('', '=== stdout (tail) ===', o?.stdoutTail ?? '');
  return `${lines.join('\n')}\n`;
}

/** One file per run in groups/<folder>/logs/, through safe-fs (the folder is the agent's). */
export function writeRunLog(entry: RunLogEntry): string | null {
  try {
    return withSafeDir(entry.groupsDir, [entry.folder, 'logs'], { create: true, replace: true }, (logs) => {
      const stamp = new Date(entry.startedAt).toISOString().replace(/:/g, '-');
      const text = render(entry);
      for (let n = 0; n < 100; n++) {
        const name = n === 0 ? `${stamp}.log` : `${stamp}-${n}.log`;
        if (logs.createFile(name, text)) return `${logs.path}/${name}`;
      }
      throw new Error('no free log name');
    });
  } catch (err) {
    logger.warn({ group: entry.folder, err: String(err) }, 'could not write run log');
    return null;
  }
}
