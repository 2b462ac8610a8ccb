import net from 'node:net';
import { parseArgs } from 'node:util';
import { AuditError, runAudit } from '../audit/run-audit.js';
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

function parse(args: string[]) {
  try {
    const { values } = parseArgs({
      args,
      options: {
        group: { type: 'string' },
        runtime: { type: 'string' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const runtime = values.runtime as RuntimeKind | undefined;
    if (runtime && !RUNTIME_KINDS.includes(runtime))
      return `--runtime must be one of ${RUNTIME_KINDS.join(', ')}`;
    return { ...values, runtime };
  } catch (e) {
    return (e as Error).message;
  }
}

/** Something answers on the local chat's port: most likely this installation's host. */
const hostAnswers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: 1000 });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.once('timeout', () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

/** `nanoclaw audit`: 0 when no row failed, 1 when one did (or the audit could not run), 2 for usage. */
export async function runAuditCommand(
  args: string[],
  deps: { config: Config; out: NodeJS.WritableStream; err: NodeJS.WritableStream },
): Promise<number> {
  const { config, out, err } = deps;
  const values = parse(args);
  if (typeof values === 'string') {
    err.write(`${values}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  if (!values.force && (await hostAnswers(config.localChannelPort))) {
    err.write(`NanoClaw answers on 127.0.0.1:${config.localChannelPort}: stop it first, or pass --force.\n`);
    return 1;
  }
  if (!values.verbose) logger.level = 'silent'; // the table is the output
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const runtime = values.runtime ? buildRuntime(values.runtime, config) : await createRuntime(config);
    await runtime.ensureRunning();
    const result = await runAudit({
      config,
      runtime,
      folder: values.group,
      verbose: values.verbose,
      signal: abort.signal,
    });
    if (values.json) out.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const seconds = (result.durationMs / 1000).toFixed(1);
      out.write(`NanoClaw sandbox audit: group ${result.group} on ${result.runtime} (${seconds} s)\n\n`);
      out.write(renderTable(result.rows, values.verbose));
      out.write(result.failed ? '\nAt least one threat row FAILED.\n' : '\nNo row failed.\n');
    }
    for (const problem of result.cleanupProblems) err.write(`could not clean up: ${problem}\n`);
    return result.failed ? 1 : 0;
  } catch (e) {
    err.write(`audit failed: ${(e as Error).message}\n`);
    return e instanceof AuditError && e.usage ? 2 : 1;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
