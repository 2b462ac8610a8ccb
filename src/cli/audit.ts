import { parseArgs } from 'node:util';
import { runAudit } from '../audit/run-audit.js';
import { renderTable } from '../audit/verdicts.js';
import { RUNTIME_KINDS, type Config, type RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { buildRuntime, createRuntime } from '../sandbox/detect.js';

const USAGE = `usage: nanoclaw audit [--group <folder>] [--runtime <kind>]
Attacks a sandbox of the group (default: main) from inside; exits 1 if a threat row failed.
`;

export async function runAuditCommand(
  args: string[],
  { config, out, err }: { config: Config; out: NodeJS.WritableStream; err: NodeJS.WritableStream },
) {
  const text = { type: 'string' } as const;
  let v;
  try {
    v = parseArgs({ args, options: { group: text, runtime: text, help: { type: 'boolean' } } }).values;
    if (v.runtime && !RUNTIME_KINDS.includes(v.runtime as RuntimeKind)) throw new Error();
  } catch {
    return (err.write(USAGE), 2);
  }
  const kind = v.runtime as RuntimeKind | undefined;
  if (v.help) return (out.write(USAGE), 0);
  const url = `http://127.0.0.1:${config.localChannelPort}/`;
  if (await fetch(url, { signal: AbortSignal.timeout(1000) }).then(Boolean, () => false))
    return (err.write(`NanoClaw answers on ${url}: stop it first.\n`), 1);
  logger.level = 'silent'; // the table is the output
  // Ctrl-C reaches the sandbox's process group too: stay to clean up.
  process.on('SIGINT', () => undefined).on('SIGTERM', () => undefined);
  try {
    const sandbox = kind ? buildRuntime(kind, config) : await createRuntime(config);
    await sandbox.ensureRunning();
    const { folder, rows } = await runAudit(config, sandbox, v.group, (s) =>
      err.write(`could not clean up: ${s}\n`),
    );
    const failed = rows.some((r) => r.verdict === 'failed');
    out.write(
      `group ${folder} on ${sandbox.kind}\n${renderTable(rows)}${failed ? 'A row FAILED.' : 'No row failed.'}\n`,
    );
    return failed ? 1 : 0;
  } catch (e) {
    return (err.write(`audit failed: ${(e as Error).message}\n`), 1);
  }
}
