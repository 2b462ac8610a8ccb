import fs from 'node:fs';
import {
  makeCacheableSignalKeyStore,
  makeWASocket,
  useMultiFileAuthState,
  type AuthenticationState,
  type WASocket,
} from '@whiskeysockets/baileys';
import QRCode from 'qrcode';
import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';

export { DisconnectReason, jidNormalizedUser } from '@whiskeysockets/baileys';
export const qrSvg = (qr: string) => QRCode.toString(qr, { type: 'svg' });

type BaileysLogger = NonNullable<Parameters<typeof makeCacheableSignalKeyStore>[1]>;
export type MakeSocketOptions = { auth: AuthenticationState; logger: BaileysLogger };
export type MakeSocket = (opts: MakeSocketOptions) => WASocket;

// Not online on connect: the person's phone keeps its notifications.
export const defaultMakeSocket: MakeSocket = (opts) =>
  makeWASocket({ ...opts, markOnlineOnConnect: false, syncFullHistory: false });

export const baileysLogger = (): BaileysLogger => logger.child({ module: 'baileys' }, { level: 'warn' });

export async function withAuth(authDir: string, make: MakeSocket = defaultMakeSocket) {
  const log = baileysLogger();
  await fs.promises.mkdir(authDir, { recursive: true, mode: 0o700 });
  const { state, saveCreds } = await useMultiFileAuthState(authDir);
  const auth = { creds: state.creds, keys: makeCacheableSignalKeyStore(state.keys, log) };
  return { saveCreds, open: () => make({ auth, logger: log }) };
}

export function disconnectStatusCode(error: unknown): number | undefined {
  const code = (error as { output?: { statusCode?: unknown } } | undefined)?.output?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

// A refusal (4xx) will not change on a retry; a timeout, a closed connection or a 5xx may.
export function toSendError(err: unknown): ChannelSendError {
  const status = disconnectStatusCode(err) ?? 0;
  const refused = status >= 400 && status < 500 && ![408, 428, 429].includes(status);
  const message = `whatsapp send failed: ${err instanceof Error ? err.message : String(err)}`;
  return new ChannelSendError(message, refused ? 'permanent' : 'transient', { cause: err });
}
