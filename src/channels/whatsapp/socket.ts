import fs from 'node:fs';
import * as wa from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';

export { DisconnectReason, jidNormalizedUser } from '@whiskeysockets/baileys';

type BaileysLogger = NonNullable<Parameters<typeof wa.makeCacheableSignalKeyStore>[1]>;
export type MakeSocketOptions = { auth: wa.AuthenticationState; logger: BaileysLogger };
export type MakeSocket = (opts: MakeSocketOptions) => wa.WASocket;

// Not online on connect: the phone keeps its notifications.
export const defaultMakeSocket: MakeSocket = (opts) =>
  wa.makeWASocket({ ...opts, markOnlineOnConnect: false, syncFullHistory: false });

export const baileysLogger = (): BaileysLogger => logger.child({ module: 'baileys' }, { level: 'warn' });

export async function withAuth(authDir: string, make = defaultMakeSocket) {
  const log = baileysLogger();
  await fs.promises.mkdir(authDir, { recursive: true, mode: 0o700 });
  const { state, saveCreds } = await wa.useMultiFileAuthState(authDir);
  const auth = { creds: state.creds, keys: wa.makeCacheableSignalKeyStore(state.keys, log) };
  return { saveCreds, open: () => make({ auth, logger: log }) };
}

export const disconnectStatusCode = (error: unknown): number | undefined =>
  (error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode;

// A refusal (4xx) will not change on a retry.
export function toSendError(err: unknown): ChannelSendError {
  const status = disconnectStatusCode(err) ?? 0;
  const refused = status >= 400 && status < 500 && ![408, 428, 429].includes(status);
  return new ChannelSendError(`${err}`, refused ? 'permanent' : 'transient', { cause: err });
}
