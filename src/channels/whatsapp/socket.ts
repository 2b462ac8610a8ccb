import fs from 'node:fs';
import {
  makeCacheableSignalKeyStore,
  makeWASocket,
  useMultiFileAuthState,
  type AuthenticationState,
  type BaileysEventMap,
  type GroupMetadata,
  type WAMessage,
  type WAPresence,
} from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';
import type { OutgoingContent } from './media.js';

/** What the channel and `nanoclaw whatsapp-auth` use of Baileys' socket; tests hand in a fake. */
export interface WASocketLike {
  ev: {
    on<K extends keyof BaileysEventMap>(event: K, listener: (arg: BaileysEventMap[K]) => void): void;
  };
  user?: { id: string; lid?: string; name?: string };
  sendMessage(jid: string, content: { text: string } | OutgoingContent): Promise<unknown>;
  sendPresenceUpdate(type: WAPresence, toJid?: string): Promise<void>;
  presenceSubscribe(toJid: string): Promise<void>;
  logout(msg?: string): Promise<void>;
  groupFetchAllParticipating(): Promise<Record<string, Pick<GroupMetadata, 'id' | 'subject' | 'creation'>>>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  end(error: Error | undefined): unknown;
  signalRepository?: { lidMapping?: { getPNForLID(lid: string): Promise<string | null> } };
  updateMediaMessage?(message: WAMessage): Promise<WAMessage>;
}

export type BaileysLogger = NonNullable<Parameters<typeof makeCacheableSignalKeyStore>[1]>;

export interface MakeSocketOptions {
  auth: AuthenticationState;
  logger: BaileysLogger;
}

export type MakeSocket = (opts: MakeSocketOptions) => WASocketLike;

// Not online on connect: the person's phone keeps its notifications.
export const defaultMakeSocket: MakeSocket = (opts) =>
  makeWASocket({ ...opts, markOnlineOnConnect: false, syncFullHistory: false });

export const baileysLogger = (): BaileysLogger => logger.child({ module: 'baileys' }, { level: 'warn' });

export async function loadAuthState(authDir: string, log: BaileysLogger) {
  await fs.promises.mkdir(authDir, { recursive: true, mode: 0o700 });
  const { state, saveCreds } = await useMultiFileAuthState(authDir);
  return { state: { creds: state.creds, keys: makeCacheableSignalKeyStore(state.keys, log) }, saveCreds };
}

export function disconnectStatusCode(error: unknown): number | undefined {
  const code = (error as { output?: { statusCode?: unknown } } | null | undefined)?.output?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** A refusal (4xx) will not change on a retry; a timeout, a closed connection or a 5xx may. */
export function toSendError(err: unknown): ChannelSendError {
  const status = disconnectStatusCode(err);
  const refused = status !== undefined && status >= 400 && status < 500 && ![408, 428, 429].includes(status);
  const message = `whatsapp send failed: ${err instanceof Error ? err.message : String(err)}`;
  return new ChannelSendError(message, refused ? 'permanent' : 'transient', { cause: err });
}
