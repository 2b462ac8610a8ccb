import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { App } from '../app.js';
import { LocalChannel } from '../channels/local/local-channel.js';
import { logger } from '../logger.js';
import { createRuntime } from '../sandbox/detect.js';

// The token is a credential: to a terminal only, never the log.
export function announceReady(
  runtime: string,
  local?: LocalChannel,
  out: Writable & { isTTY?: boolean } = process.stdout,
) {
  logger.info({ runtime, localChatPort: local?.port }, 'NanoClaw ready');
  const link = out.isTTY
    ? local?.url()
    : `http://127.0.0.1:${local?.port}/ (run \`nanoclaw open\` for the link)`;
  if (local) out.write(`NanoClaw is ready. Local chat: ${link}\n`);
}

export async function runStart(config: Config): Promise<number> {
  // A stop during start-up waits until the host is up.
  const stop = new Promise((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
  const runtime = await createRuntime(config);
  await runtime.ensureRunning();
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
  await app.stop();
  return 0;
}
