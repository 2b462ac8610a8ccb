import { parseArgs } from 'node:util';
import { runAudit } from '../audit/run-audit.js';
import { renderTable } from '../audit/verdicts.js';
import { RUNTIME_KINDS, type Config, type RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { buildRuntime, createRuntime } from '../sandbox/detect.js';

const USAGE = `usage: nanoclaw audit [--group <folder>] [--runtime <kind>] [--json] [--force]

Starts a real sandbox for a group (main by default), attacks its boundary from inside, lets the host act
on what it planted, and gives each threat row of the README's security table a verdict: held, failed,
n/a or not audited. Exits 1 if a row failed.

  --runtime <kind>   ${RUNTIME_KINDS.join(' | ')} (default: detected)
  --json             every check, as JSON
  --force            run although NanoClaw answers on its port (the audit briefly moves the group's
                     CLAUDE.md and logs/ aside and empties its pending input)
`;

// 0: no row failed; 1: one did, or the audit could not run; 2: usage.
export async function runAuditCommand(
  args: string[],
  { config, out, err }: { config: Config; out: NodeJS.WritableStream; err: NodeJS.WritableStream },
): Promise<number> {
  const [text, flag] = [{ type: 'string' }, { type: 'boolean' }] as const;
  let values;
  try {
    const options = { group: text, runtime: text, json: flag, force: flag, help: { ...flag, short: 'h' } };
    ({ values } = parseArgs({ args, options }));
    if (values.runtime && !RUNTIME_KINDS.includes(values.runtime as RuntimeKind))
      throw new Error(`--runtime must be one of ${RUNTIME_KINDS.join(', ')}`);
  } catch (e) {
    err.write(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) return (out.write(USAGE), 0);
  const url = `http://127.0.0.1:${config.localChannelPort}/`;
  if (!values.force && (await fetch(url, { signal: AbortSignal.timeout(1000) }).then(Boolean, () => false))) {
    err.write(`NanoClaw answers on ${url}: stop it first, or pass --force.\n`);
    return 1;
  }
  logger.level = 'silent'; // the table is the output
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const { runtime, group: folder } = values;
    const sandbox = runtime ? buildRuntime(runtime as RuntimeKind, config) : await createRuntime(config);
    await sandbox.ensureRunning();
    const result = await runAudit({ config, runtime: sandbox, folder, signal: abort.signal });
    const verdict = result.failed ? 'At least one threat row FAILED.' : 'No row failed.';
    out.write(
      values.json
        ? `${JSON.stringify(result, null, 2)}\n`
        : `NanoClaw sandbox audit: group ${result.group} on ${result.runtime}\n\n${renderTable(result.rows)}\n${verdict}\n`,
    );
    for (const problem of result.cleanupProblems) err.write(`could not clean up: ${problem}\n`);
    return result.failed ? 1 : 0;
  } catch (e) {
    err.write(`audit failed: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
