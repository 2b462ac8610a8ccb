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

function render({ input: { prompt, ...input }, outcome: o, result, ...e }: RunLogEntry): string {
  return `=== Sandbox run ===
Sandbox: ${e.sandboxName}
Runtime: ${e.runtime}
Started: ${new Date(e.startedAt).toISOString()}
Duration: ${e.durationMs} ms
Exit code: ${o?.exitCode ?? 'none'}${o?.signal ? ` (signal ${o.signal})` : ''}
Timed out: ${o?.timedOut ?? false}
Output over cap: ${o?.overflowed ?? false}
Outputs: ${o?.outputs.length ?? 0}
Status: ${result.status}${result.error ? ` — ${result.error}` : ''}
Input: ${JSON.stringify({ ...input, promptLength: prompt.length })}
Env: ${e.envKeys.join(', ')}
Mounts:
${e.mounts.map((m) => (m.mask ? `  (hidden ${m.mask}) ${m.containerPath}` : `  ${m.hostPath} -> ${m.containerPath} (${m.readonly ? 'ro' : 'rw'})`)).join('\n')}

=== stderr (tail) ===
${o?.stderrTail ?? ''}${result.status === 'error' ? `\n\n=== stdout (tail) ===\n${o?.stdoutTail ?? ''}` : ''}
`;
}

/** One file per run in groups/<folder>/logs/ (not the prompt, the user's conversation), through safe-fs. */
export function writeRunLog(entry: RunLogEntry): string | null {
  try {
    return withSafeDir(entry.groupsDir, [entry.folder, 'logs'], { create: true, replace: true }, (logs) => {
      const stamp = new Date(entry.startedAt).toISOString().replace(/:/g, '-');
      for (let n = 0; n < 100; n++) {
        const name = n ? `${stamp}-${n}.log` : `${stamp}.log`;
        if (logs.createFile(name, render(entry))) return `${logs.path}/${name}`;
      }
      throw new Error('no free log name');
    });
  } catch (err) {
    logger.warn({ group: entry.folder, err: String(err) }, 'could not write run log');
    return null;
  }
}
