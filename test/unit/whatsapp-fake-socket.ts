import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Boom } from '@hapi/boom';
import {
  BufferJSON,
  initAuthCreds,
  jidNormalizedUser,
  type BaileysEventMap,
  type GroupMetadata,
  type WAMessage,
  type WAPresence,
  type WASocket,
} from '@whiskeysockets/baileys';
import type { OutgoingContent } from '../../src/channels/whatsapp/media.js';
import type { MakeSocket, MakeSocketOptions } from '../../src/channels/whatsapp/socket.js';
import { WhatsAppChannel, type WhatsAppDeps } from '../../src/channels/whatsapp/whatsapp-channel.js';
import type { StoredMessage } from '../../src/db/message-repo.js';
import { openStore, type Store } from '../../src/db/store.js';
import type { ChatInfo } from '../../src/types.js';

export const OWN_PN = '15550001111@s.whatsapp.net';
export const OWN_LID = '88880001111@lid';

/**
 * Stands in for Baileys' WASocket: the same event names and payload shapes on `ev`, recorded
 * calls for what the channel sends. Tests drive it with `emit`, `open` and `close`.
 */
export class FakeSocket {
  private readonly emitter = new EventEmitter();
  readonly ev = {
    on: <K extends keyof BaileysEventMap>(event: K, listener: (arg: BaileysEventMap[K]) => void) => {
      this.emitter.on(event, listener);
    },
  };
  user: { id: string; lid?: string; name?: string } | undefined;
  /** Text messages by their text, media by their caption; `contents` has what was sent in full. */
  readonly sent: Array<{ jid: string; text: string }> = [];
  readonly contents: OutgoingContent[] = [];
  readonly presence: Array<{ type: WAPresence; jid: string | undefined }> = [];
  readonly pairingRequests: string[] = [];
  readonly presenceSubscriptions: string[] = [];
  loggedOut = false;
  /** Outcomes of the next sends, one per entry: an error fails that send, null lets it through. */
  readonly sendFailures: Array<Error | null> = [];
  groups: Record<string, GroupMetadata> = {};
  groupFetches = 0;
  ended = false;
  readonly lids = new Map<string, string>();
  readonly signalRepository = {
    lidMapping: { getPNForLID: async (lid: string) => this.lids.get(lid) ?? null },
  };
  pairingCode = 'ABCD1234';

  constructor(readonly opts: MakeSocketOptions) {}

  emit<K extends keyof BaileysEventMap>(event: K, arg: BaileysEventMap[K]): void {
    if (event === 'lid-mapping.update') {
      const { lid, pn } = arg as BaileysEventMap['lid-mapping.update'];
      this.lids.set(lid, pn); // as Baileys, which keeps the mappings it hears of
    }
    this.emitter.emit(event, arg);
  }

  open(
    user: { id: string; lid?: string } = { id: '15550001111:7@s.whatsapp.net', lid: '88880001111:7@lid' },
  ) {
    this.user = user;
    // As Baileys, which knows the account's own LID once connected.
    if (user.lid) this.lids.set(jidNormalizedUser(user.lid), jidNormalizedUser(user.id));
    this.emit('connection.update', { connection: 'open' });
  }

  close(statusCode: number | undefined) {
    const error = statusCode === undefined ? undefined : new Boom('Connection Closed', { statusCode });
    this.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
  }

  upsert(messages: WAMessage[], type: 'notify' | 'append' = 'notify') {
    this.emit('messages.upsert', { messages, type });
  }

  async sendMessage(jid: string, content: OutgoingContent): Promise<undefined> {
    const failure = this.sendFailures.shift();
    if (failure) throw failure;
    this.sent.push({ jid, text: content.text ?? content.caption ?? '' });
    this.contents.push(content);
    return undefined;
  }

  async sendPresenceUpdate(type: WAPresence, jid?: string): Promise<void> {
    this.presence.push({ type, jid });
  }

  async presenceSubscribe(jid: string): Promise<void> {
    this.presenceSubscriptions.push(jid);
  }

  /** As Baileys: tells the server, then ends the connection as logged out. */
  async logout(): Promise<void> {
    this.loggedOut = true;
    this.close(401);
  }

  /** A presence.update as Baileys emits it: the chat, and who in it is typing or paused. */
  presenceUpdate(chatJid: string, participant: string, presence: WAPresence) {
    this.emit('presence.update', {
      id: chatJid,
      presences: { [participant]: { lastKnownPresence: presence } },
    });
  }

  async groupFetchAllParticipating(): Promise<Record<string, GroupMetadata>> {
    this.groupFetches += 1;
    return this.groups;
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    this.pairingRequests.push(phoneNumber);
    return this.pairingCode;
  }

  end(): void {
    this.ended = true;
  }

  /** As Baileys: resolves once `check` holds, rejects when the connection closes or after the timeout. */
  async waitForConnectionUpdate(
    check: (u: BaileysEventMap['connection.update']) => Promise<boolean | undefined>,
    timeoutMs: number,
  ): Promise<void> {
    let listener: ((u: BaileysEventMap['connection.update']) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Boom('Timed Out', { statusCode: 408 })), timeoutMs);
        listener = (u) => {
          if (u.connection === 'close') reject(u.lastDisconnect?.error ?? new Boom('Connection Closed'));
          else void check(u).then((ok) => ok && resolve());
        };
        this.emitter.on('connection.update', listener);
      });
    } finally {
      clearTimeout(timer);
      if (listener) this.emitter.off('connection.update', listener);
    }
  }
}

/** A makeSocket that records every socket it hands out. */
export function fakeSocketFactory() {
  const sockets: FakeSocket[] = [];
  // The channel sees a WASocket; the fake has only the parts it uses.
  const makeSocket: MakeSocket = (opts) => {
    const sock = new FakeSocket(opts);
    sockets.push(sock);
    return sock as unknown as WASocket;
  };
  return { sockets, makeSocket };
}

/** Writes creds.json as Baileys does after a completed link. */
export function writeLinkedCreds(authDir: string): void {
  fs.mkdirSync(authDir, { recursive: true });
  const creds = {
    ...initAuthCreds(),
    me: { id: '15550001111:7@s.whatsapp.net', lid: '88880001111:7@lid', name: 'Me' },
    registered: true,
  };
  fs.writeFileSync(path.join(authDir, 'creds.json'), JSON.stringify(creds, BufferJSON.replacer));
}

let nextId = 1;

/** A WAMessage as Baileys delivers it in messages.upsert. */
export function waMessage(opts: {
  remoteJid: string;
  message: WAMessage['message'];
  fromMe?: boolean;
  participant?: string;
  remoteJidAlt?: string;
  participantAlt?: string;
  pushName?: string;
  id?: string;
  timestamp?: WAMessage['messageTimestamp'];
}): WAMessage {
  return {
    key: {
      remoteJid: opts.remoteJid,
      fromMe: opts.fromMe ?? false,
      id: opts.id ?? `3EB0${String(nextId++).padStart(16, '0')}`,
      ...(opts.participant ? { participant: opts.participant } : {}),
      ...(opts.remoteJidAlt ? { remoteJidAlt: opts.remoteJidAlt } : {}),
      ...(opts.participantAlt ? { participantAlt: opts.participantAlt } : {}),
    },
    message: opts.message,
    messageTimestamp: opts.timestamp ?? 1_700_000_000,
    ...(opts.pushName !== undefined ? { pushName: opts.pushName } : {}),
  };
}

export const FAMILY = '120363000000000001@g.us';

export interface Harness {
  home: string;
  authDir: string;
  /** data/ipc: media lands in <folder>/to-agent/media/. */
  ipcDir: string;
  tmpDir: string;
  store: Store;
  channel: WhatsAppChannel;
  sockets: FakeSocket[];
  makeSocket: MakeSocket;
  /** The socket the channel is using now. */
  sock(): FakeSocket;
  history(jid: string): StoredMessage[];
  chat(jid: string): ChatInfo | undefined;
  cleanup(): void;
}

/**
 * A channel wired to a real store in a temp NANOCLAW_HOME: the family group and the self-chat
 * (main) are registered, the creds of a completed link are on disk, and sockets are fakes.
 */
export function channelHarness(overrides: Partial<WhatsAppDeps> & { linked?: boolean } = {}): Harness {
  const { linked = true, ...deps } = overrides;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-wa-'));
  const authDir = path.join(home, 'store', 'auth');
  const ipcDir = path.join(home, 'data', 'ipc');
  const tmpDir = path.join(home, 'data', 'tmp');
  if (linked) writeLinkedCreds(authDir);
  const store = openStore(path.join(home, 'store', 'messages.db'));
  const register = (jid: string, folder: string, isMain: boolean) =>
    store.groups.upsert({
      jid,
      name: folder,
      folder,
      trigger: '@Andy',
      requiresTrigger: !isMain,
      isMain,
      addedAt: new Date().toISOString(),
    });
  register(FAMILY, 'family', false);
  register(OWN_PN, 'main', true);
  const { sockets, makeSocket } = fakeSocketFactory();
  const channel = new WhatsAppChannel({
    authDir,
    ipcDir,
    tmpDir,
    assistantName: 'Andy',
    assistantHasOwnNumber: false,
    callbacks: {
      onMessage: (m) => void store.messages.store(m),
      onChatMetadata: (c) => store.messages.upsertChat(c),
    },
    registeredGroups: () => new Map(store.groups.all().map((g) => [g.jid, g])),
    makeSocket,
    ...deps,
  });
  return {
    home,
    authDir,
    ipcDir,
    tmpDir,
    store,
    channel,
    sockets,
    makeSocket,
    sock: () => {
      const last = sockets.at(-1);
      if (!last) throw new Error('no socket was made');
      return last;
    },
    history: (jid) => store.messages.history(jid, undefined),
    chat: (jid) => store.messages.listChats().find((c) => c.jid === jid),
    cleanup: () => {
      store.close();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
