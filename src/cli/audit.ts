import net from 'node:net';
import { RUNTIME_KINDS, type Config, type RuntimeKind } from '../config.js';
import { AuditError, runAudit, type AuditResult } from '../audit/run-audit.js';
import { renderTable } from '../audit/verdicts.js';
import { logger } from '../logger.js';
import { buildRuntime, createRuntime } from '../sandbox/detect.js';
import type { SandboxRuntime } from '../sandbox/runtime.js';

export const AUDIT_USAGE = `usage: nanoclaw audit [--group <folder>] [--runtime <kind>] [--json] [--verbose] [--force]

Starts a real sandbox for a group and attacks its boundary from inside: host files, other groups,
the API key, the network, privileges and limits, and links planted where the host writes. Then the
host acts on what was planted, and every threat row of the README's security table gets a verdict:
held, failed, n/a (on this runtime) or not audited. Exits 1 if any row failed.

  --group <folder>   the group to audit (default: the main group)
  --runtime <kind>   ${RUNTIME_KINDS.join(' | ')} (default: detected, like start)
  --json             the verdicts as JSON instead of a table
  --verbose          every check, and the host's log on stderr
  --force            run even though NanoClaw seems to be running

Run it while the assistant is stopped: for a few seconds the group's CLAUDE.md and logs/ are
renamed aside (as an attacker would) and put back, and its pending input is emptied.
`;

interface AuditArgs {
  folder?: string;
  runtime?: RuntimeKind;
  json: boolean;
  verbose: boolean;
  force: boolean;
}

function parseArgs(args: string[]): AuditArgs | string {
  const parsed: AuditArgs = { json: false, verbose: false, force: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--json') parsed.json = true;
    else if (arg === '--verbose') parsed.verbose = true;
    else if (arg === '--force') parsed.force = true;
    else if (arg === '--group' || arg === '--runtime') {
      const value = args[++i];
      if (!value || value.startsWith('--')) return `${arg} needs a value`;
      if (arg === '--group') parsed.folder = value;
      else if ((RUNTIME_KINDS as readonly string[]).includes(value)) parsed.runtime = value as RuntimeKind;
      else return `--runtime must be one of ${RUNTIME_KINDS.join(', ')}`;
    } else return `unknown option '${arg}'`;
  }
  return parsed;
}

/** Something answers on the local chat's loopback port: most likely this installation's host. */
function localChatAnswers(port: number): Promise<boolean> {
  if (!port) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface AuditCommandDeps {
  config: Config;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** `nanoclaw audit`: 0 when every row held or is n/a, 1 when any failed, 2 for usage errors. */
export async function runAuditCommand(args: string[], deps: AuditCommandDeps): Promise<number> {
  const { config, out, err } = deps;
  if (args.includes('--help') || args.includes('-h')) {
    out.write(AUDIT_USAGE);
    return 0;
  }
  const parsed = parseArgs(args);
  if (typeof parsed === 'string') {
    err.write(`${parsed}\n\n${AUDIT_USAGE}`);
    return 2;
  }
  if (!parsed.force && (await localChatAnswers(config.localChannelPort))) {
    err.write(
      `NanoClaw seems to be running (127.0.0.1:${config.localChannelPort} answers). The audit briefly moves ` +
        "a group's memory and logs aside and empties its pending input: stop the assistant first, or pass --force.\n",
    );
    return 1;
  }
  // The table is the output; the host's own log lines would only bury it.
  if (!parsed.verbose) logger.level = 'silent';

  let runtime: SandboxRuntime;
  try {
    runtime = parsed.runtime ? buildRuntime(parsed.runtime, config) : await createRuntime(config);
    await runtime.ensureRunning();
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return 1;
  }
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: AuditResult;
  try {
    result = await runAudit({
      config,
      runtime,
      ...(parsed.folder !== undefined ? { folder: parsed.folder } : {}),
      verbose: parsed.verbose,
      signal: abort.signal,
    });
  } catch (e) {
    err.write(`audit failed: ${(e as Error).message}\n`);
    return e instanceof AuditError && e.usage ? 2 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  if (parsed.json) out.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const seconds = (result.durationMs / 1000).toFixed(1);
    out.write(`NanoClaw sandbox audit: group ${result.group} on ${result.runtime} (${seconds} s)\n\n`);
    out.write(renderTable(result.rows, parsed.verbose));
    out.write(result.failed ? '\nAt least one threat row FAILED.\n' : '\nNo row failed.\n');
  }
  for (const problem of result.cleanupProblems) err.write(`could not clean up: ${problem}\n`);
  return result.failed ? 1 : 0;
}
