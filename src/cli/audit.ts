import net from 'node:net';
import { parseArgs } from 'node:util';
import { AuditUsageError, runAudit } from '../audit/run-audit.js';
import { renderTable } from '../audit/verdicts.js';
import { RUNTIME_KINDS, type Config, type RuntimeKind } from '../config.js';
import { logger } from '../logger.js';
import { buildRuntime, createRuntime } from '../sandbox/detect.js';

const USAGE = `usage: nanoclaw audit [--group <folder>] [--runtime <kind>] [--json] [--verbose] [--force]

Starts a real sandbox for a group (main by default), attacks its boundary from inside, lets the
host act on what it planted, and gives each threat row of the README's security table a verdict:
held, failed, n/a or not audited. Exits 1 if a row failed.

  --runtime <kind>   ${RUNTIME_KINDS.join(' | ')} (default: detected)
  --json             JSON instead of a table
  --verbose          every check, and the host's log on stderr
  --force            run although NanoClaw answers on its port (the audit briefly moves the
                     group's CLAUDE.md and logs/ aside and empties its pending input)
`;

/** `nanoclaw audit`: 0 when no row failed, 1 when one did (or the audit could not run), 2 for usage. */
export async function runAuditCommand(
  args: string[],
  { config, out, err }: { config: Config; out: NodeJS.WritableStream; err: NodeJS.WritableStream },
): Promise<number> {
  const [text, flag] = [{ type: 'string' }, { type: 'boolean' }] as const;
  let values;
  try {
    const options = {
      group: text,
      runtime: text,
      json: flag,
      verbose: flag,
      force: flag,
      help: { ...flag, short: 'h' },
    };
    ({ values } = parseArgs({ args, options }));
    if (values.runtime && !RUNTIME_KINDS.includes(values.runtime as RuntimeKind))
      throw new Error(`--runtime must be one of ${RUNTIME_KINDS.join(', ')}`);
  } catch (e) {
    err.write(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  // Something answers on the local chat's port: most likely this installation's host.
  const hostUp = () => {
    const socket = net.connect({ host: '127.0.0.1', port: config.localChannelPort, timeout: 1000 });
    return new Promise<boolean>((resolve) =>
      socket
        .once('connect', () => resolve(true))
        .once('timeout', () => resolve(false))
        .once('error', () => resolve(false)),
    ).finally(() => socket.destroy());
  };
  if (!values.force && (await hostUp())) {
    err.write(`NanoClaw answers on 127.0.0.1:${config.localChannelPort}: stop it first, or pass --force.\n`);
    return 1;
  }
  if (!values.verbose) logger.level = 'silent'; // the table is the output
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const { runtime, group, verbose } = values;
    const sandbox = runtime ? buildRuntime(runtime as RuntimeKind, config) : await createRuntime(config);
    await sandbox.ensureRunning();
    const result = await runAudit({ config, runtime: sandbox, folder: group, verbose, signal: abort.signal });
    if (values.json) out.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      out.write(
        `NanoClaw sandbox audit: group ${result.group} on ${result.runtime} (${(result.durationMs / 1000).toFixed(1)} s)\n\n` +
          renderTable(result.rows, verbose) +
          (result.failed ? '\nAt least one threat row FAILED.\n' : '\nNo row failed.\n'),
      );
    for (const problem of result.cleanupProblems) err.write(`could not clean up: ${problem}\n`);
    return result.failed ? 1 : 0;
  } catch (e) {
    err.write(`audit failed: ${(e as Error).message}\n`);
    return e instanceof AuditUsageError ? 2 : 1;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
