import type { Config } from '../config.js';
import { App } from '../app.js';
import { LocalChannel } from '../channels/local/local-channel.js';
import { logger } from '../logger.js';
import { createRuntime } from '../sandbox/detect.js';

// The link's token is a credential: to a terminal only, never the log; elsewhere `nanoclaw open` prints it.
export function announceReady(
  runtime: string,
  local: LocalChannel | undefined,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): void {
  logger.info({ runtime, localChatPort: local?.port }, 'NanoClaw ready');
  if (local)
    out.write(
      `NanoClaw is ready. Local chat: ${out.isTTY ? local.url() : `http://127.0.0.1:${local.port}/ (run \`nanoclaw open\` for the link with its token)`}\n`,
    );
}

/** Runs until SIGINT/SIGTERM, then shuts down gracefully and exits 0. */
export async function runStart(config: Config): Promise<number> {
  // Listening from the first moment: a stop during start-up waits until the host is up. A second signal exits at once.
  const stop = new Promise<NodeJS.Signals>((resolve) =>
    process.once('SIGINT', resolve).once('SIGTERM', resolve),
  );
  let runtime;
  try {
    runtime = await createRuntime(config);
    await runtime.ensureRunning();
  } catch (err) {
    return (process.stderr.write(`${(err as Error).message}\n`), 1);
  }
  const orphans = await runtime.cleanupOrphans(config.instanceId).catch(() => []);
  if (orphans.length) logger.info({ orphans }, 'stopped leftover sandboxes of this instance');
  if (!(await runtime.imageExists(config.containerImage)))
    logger.warn({ image: config.containerImage }, 'agent image missing: run `nanoclaw build`');
  const app = await App.create(config, runtime);
  await app.start();
  announceReady(
    runtime.kind,
    app.channels.find((c) => c instanceof LocalChannel),
  );
  logger.info({ signal: await stop }, 'shutting down');
  const started = Date.now();
  await app.stop();
  logger.info({ ms: Date.now() - started }, 'stopped');
  return 0;
}
