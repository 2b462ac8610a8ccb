import type { Config } from '../config.js';
import { App } from '../app.js';
import { LocalChannel } from '../channels/local/local-channel.js';
import { logger } from '../logger.js';
import { createRuntime } from '../sandbox/detect.js';
import type { SandboxRuntime } from '../sandbox/runtime.js';

/**
 * The chat link carries the local channel's token, a credential: it goes to a terminal only, never
 * into the log. Without a terminal (a service, output sent to a file or journald) the link is
 * printed without its token; `nanoclaw open` prints it on demand.
 */
export function announceReady(
  runtimeKind: string,
  local: LocalChannel | undefined,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): void {
  logger.info({ runtime: runtimeKind, localChatPort: local?.port }, 'NanoClaw ready');
  if (!local) return;
  if (out.isTTY) out.write(`NanoClaw is ready. Local chat: ${local.url()}\n`);
  else
    out.write(
      `NanoClaw is ready. Local chat: http://127.0.0.1:${local.port}/ (run \`nanoclaw open\` for the link with its access token)\n`,
    );
}

/** `nanoclaw start`: runs until SIGINT/SIGTERM, then shuts down gracefully and exits 0. */
export async function runStart(config: Config): Promise<number> {
  // Listening from the first moment: a stop requested during start-up waits until the host is up,
  // then shuts it down cleanly. A second signal gets the default behaviour (an immediate exit).
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  let runtime: SandboxRuntime;
  try {
    runtime = await createRuntime(config);
    await runtime.ensureRunning();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  const orphans = await runtime.cleanupOrphans(config.instanceId).catch(() => []);
  if (orphans.length > 0) logger.info({ orphans }, 'stopped leftover sandboxes of this instance');
  if (!(await runtime.imageExists(config.containerImage))) {
    logger.warn({ image: config.containerImage }, 'agent image missing: run `nanoclaw build`');
  }
  const app = await App.create(config, runtime);
  await app.start();
  announceReady(
    runtime.kind,
    app.channels.find((c) => c instanceof LocalChannel) as LocalChannel | undefined,
  );

  const signal = await stopRequested;
  const started = Date.now();
  logger.info({ signal }, 'shutting down');
  await app.stop();
  logger.info({ ms: Date.now() - started }, 'stopped');
  return 0;
}
