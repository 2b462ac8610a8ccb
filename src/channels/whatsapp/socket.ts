import fs from 'node:fs';
import path from 'node:path';
import {
  Browsers,
  jidNormalizedUser,
  makeCacheableSignalKeyStore,
  makeWASocket,
  useMultiFileAuthState,
  type AuthenticationState,
  type BaileysEventMap,
  type GroupMetadata,
  type WAMessage,
  type WAPresence,
} from '@whiskeysockets/baileys';
import { z } from 'zod';
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

// `registered` is only set by the pairing-code flow; a QR link leaves it false. What every
// completed link writes is the account (`me.id`), and that is what Baileys logs in with.
const linkedCredsSchema = z.object({ me: z.object({ id: z.string().min(1) }) });

/** True when creds.json exists and holds a completed link (an account to log in as). */
export function isWhatsAppLinked(authDir: string): boolean {
  return linkedAccountJid(authDir) !== undefined;
}

/**
 * The phone jid of the linked account (`<number>@s.whatsapp.net`), read from creds.json: the
 * self-chat, which the CLI can offer to register as main without a running host.
 */
export function linkedAccountJid(authDir: string): string | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(path.join(authDir, 'creds.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = linkedCredsSchema.safeParse(JSON.parse(raw));
    return parsed.success ? jidNormalizedUser(parsed.data.me.id) || undefined : undefined;
  } catch {
    return undefined;
  }
}

/** The status code Baileys puts on the Boom error that closed the connection, if any. */
export function disconnectStatusCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const output = (error as { output?: { statusCode?: unknown } }).output;
  return typeof output?.statusCode === 'number' ? output.statusCode : undefined;
}
