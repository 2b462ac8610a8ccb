import fs from 'node:fs';
import {
  Browsers,
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

/**
 * The part of Baileys' WASocket the channel and the auth command use. The real socket satisfies it
 * (checked in `defaultMakeSocket`); tests hand in a fake with the same event names and payloads.
 */
export interface WASocketLike {
  ev: {
    on<K extends keyof BaileysEventMap>(event: K, listener: (arg: BaileysEventMap[K]) => void): void;
  };
  user?: { id: string; lid?: string; name?: string } | undefined;
  sendMessage(jid: string, content: { text: string }): Promise<unknown>;
  sendPresenceUpdate(type: WAPresence, toJid?: string): Promise<void>;
  groupFetchAllParticipating(): Promise<Record<string, Pick<GroupMetadata, 'id' | 'subject' | 'creation'>>>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  end(error: Error | undefined): unknown;
  signalRepository?: { lidMapping?: { getPNForLID(lid: string): Promise<string | null> } };
  /** Asks the sender's phone to upload expired media again. */
  updateMediaMessage?(message: WAMessage): Promise<WAMessage>;
}

/** The Baileys logger type, kept structural so a pino child fits. */
export type BaileysLogger = Parameters<typeof makeCacheableSignalKeyStore>[1];

export interface MakeSocketOptions {
  auth: AuthenticationState;
  logger: NonNullable<BaileysLogger>;
}

export type MakeSocket = (opts: MakeSocketOptions) => WASocketLike;

export function defaultMakeSocket(opts: MakeSocketOptions): WASocketLike {
  const sock: WASocketLike = makeWASocket({
    auth: opts.auth,
    logger: opts.logger,
    browser: Browsers.macOS('Chrome'),
    printQRInTerminal: false,
    // The person's phone keeps getting notifications while the assistant is connected.
    markOnlineOnConnect: false,
    syncFullHistory: false,
  });
  return sock;
}

/** Baileys is chatty: only its warnings and errors reach our log. */
export function baileysLogger(): NonNullable<BaileysLogger> {
  return logger.child({ module: 'baileys' }, { level: 'warn' });
}

export interface LoadedAuth {
  state: AuthenticationState;
  saveCreds(): Promise<void>;
}

export async function loadAuthState(authDir: string, log: NonNullable<BaileysLogger>): Promise<LoadedAuth> {
  await fs.promises.mkdir(authDir, { recursive: true, mode: 0o700 });
  const { state, saveCreds } = await useMultiFileAuthState(authDir);
  return {
    state: { creds: state.creds, keys: makeCacheableSignalKeyStore(state.keys, log) },
    saveCreds,
  };
}

export { isWhatsAppLinked, linkedAccountJid } from './link-state.js';

/** The status code Baileys puts on the Boom error that closed the connection, if any. */
export function disconnectStatusCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const output = (error as { output?: { statusCode?: unknown } }).output;
  return typeof output?.statusCode === 'number' ? output.statusCode : undefined;
}
