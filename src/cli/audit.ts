import { runAudit } from '../audit/run-audit.js';
import { renderTable } from '../audit/probe.js';
import { RUNTIME_KINDS, type Config, type RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { buildRuntime, createRuntime } from '../sandbox/detect.js';
import { parseCommand } from './args.js';

export async function runAuditCommand(
  args: string[],
  { config, out, err }: { config: Config; out: NodeJS.WritableStream; err: NodeJS.WritableStream },
) {
  const p = parseCommand(['audit', ...args], out, err);
  if (typeof p === 'number') return p;
  const { group, runtime: kind } = p.values as Record<string, string | undefined>;
  if (kind && !RUNTIME_KINDS.includes(kind as RuntimeKind))
    return (err.write(`error: the runtime is one of ${RUNTIME_KINDS.join(', ')}\n`), 2);
  logger.level = 'silent'; // the table is the output
  // Ctrl-C reaches the sandbox's process group too: stay to clean up.
  process.on('SIGINT', () => undefined).on('SIGTERM', () => undefined);
  try {
    const sandbox = kind ? buildRuntime(kind as RuntimeKind, config) : await createRuntime(config);
    await sandbox.ensureRunning();
    const { folder, rows } = await runAudit(config, sandbox, group, err);
    const failed = rows.some((r) => r.verdict === 'failed');
    out.write(
      `group ${folder} on ${sandbox.kind}\n${renderTable(rows)}${failed ? 'A row FAILED.' : 'No row failed.'}\n`,
    );
    return failed ? 1 : 0;
  } catch (e) {
    return (err.write(`audit failed: ${(e as Error).message}\n`), 1);
  }
}
