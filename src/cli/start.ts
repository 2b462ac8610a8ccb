import path from 'node:path';
import type { Config } from '../config.js';
import { App, type AppParts } from '../app.js';
import { LocalChannel } from '../channels/local/local-channel.js';
import { isWhatsAppLinked } from '../channels/whatsapp/link-state.js';
import { logger } from '../logger.js';
import { createRuntime } from '../sandbox/detect.js';
import type { SandboxRuntime } from '../sandbox/runtime.js';

/** Builds the real host: detected sandbox runtime, local web chat, WhatsApp. */
export async function createHost(
  config: Config,
  runtime: SandboxRuntime,
  options: Pick<AppParts, 'modelUpstreamTimeoutMs'> = {},
): Promise<App> {
  // The WhatsApp library is large: load it only when there is a linked account to connect.
  const whatsapp = isWhatsAppLinked(config.authDir)
    ? await import('../channels/whatsapp/whatsapp-channel.js')
    : undefined;
  if (!whatsapp)
    logger.info(
      { authDir: config.authDir },
      'WhatsApp is not linked; run `nanoclaw whatsapp-auth` to link it',
    );
  return new App(config, {
    ...options,
    runtime,
    channels: (callbacks, app) => [
      new LocalChannel({
        port: config.localChannelPort,
        tokenFile: path.join(config.dataDir, 'local-channel.token'),
        callbacks,
        assistantName: config.assistantName,
        history: (jid, after) => app.store.messages.history(jid, after),
        isRegistered: (jid) => app.store.groups.byJid(jid) !== undefined,
        chats: () => {
          const groups = app.store.groups.all();
          const known = app.store.messages.listChats().filter((c) => c.channel === 'local');
          const rows = groups
            .filter((g) => g.jid.startsWith('local:'))
            .map((g) => ({
              jid: g.jid,
              name: g.name,
              registered: true,
              isMain: g.isMain,
              lastMessageTime: '',
            }));
          for (const c of known) {
            if (!rows.some((r) => r.jid === c.jid)) {
              rows.push({
                jid: c.jid,
                name: c.name || c.jid,
                registered: false,
                isMain: false,
                lastMessageTime: c.lastMessageTime,
              });
            }
          }
          return rows;
        },
        status: () => ({ usageToday: app.store.usage.forDay(new Date().toISOString().slice(0, 10)) }),
      }),
      ...(whatsapp
        ? [
            new whatsapp.WhatsAppChannel({
              authDir: config.authDir,
              ipcDir: config.ipcDir,
              mediaTmpDir: path.join(config.dataDir, 'tmp'),
              assistantName: config.assistantName,
              assistantHasOwnNumber: config.assistantHasOwnNumber,
              callbacks,
              registeredGroups: () => new Map(app.store.groups.all().map((g) => [g.jid, g])),
              onGroupsSynced: () => app.writeGroupSnapshots(),
              syncState: app.store.state,
            }),
          ]
        : []),
    ],
  });
}

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
  const app = await createHost(config, runtime);
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
