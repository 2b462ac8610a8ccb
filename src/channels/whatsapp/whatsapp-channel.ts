import {
  DisconnectReason,
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  jidNormalizedUser,
  normalizeMessageContent,
  toNumber,
  type BaileysEventMap,
  type WAMessage,
} from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';
import type { Channel, ChannelCallbacks, RegisteredGroup } from '../../types.js';
import { extractText, findMedia } from './inbound.js';
import { JidTranslator } from './jids.js';
import { isWhatsAppLinked } from './link-state.js';
import { describeMedia, outgoingContent, saveMedia, type MediaDownloader } from './media.js';
import { backoffDelay, stopReason, type BackoffOptions } from './reconnect-policy.js';
import {
  baileysLogger,
  defaultMakeSocket,
  disconnectStatusCode,
  loadAuthState,
  toSendError,
  type MakeSocket,
  type WASocketLike,
} from './socket.js';

const SHUTDOWN_WAIT_MS = 5000;
const SYNC_INTERVAL_MS = 24 * 60 * 60 * 1000;
const SYNC_KEY = 'whatsapp_last_group_sync';
const HOW_TO_LINK = 'run `nanoclaw whatsapp-auth` to link it';
const VALID_JID = /^(\d{5,20}@s\.whatsapp\.net|\d+(-\d+)?@g\.us|\d+@lid)$/;

export type WhatsAppHealth = 'up' | 'down' | 'logged-out';

export interface WhatsAppDeps {
  authDir: string;
  ipcDir: string;
  /** Host-private, for downloads in progress. */
  mediaTmpDir: string;
  /** data/files/: what agents send with send_file (the outbox text carries a marker). */
  filesDir?: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
  callbacks: ChannelCallbacks;
  /** Asked on every message, so registrations apply at once. */
  registeredGroups(): Map<string, RegisteredGroup>;
  onGroupsSynced?(groups: Array<{ jid: string; name: string }>): void;
  syncState: { get(key: string): string | undefined; set(key: string, value: string): void };
  makeSocket?: MakeSocket;
  downloadMedia?: MediaDownloader;
  maxMediaBytes?: number;
  mediaTimeoutMs?: number;
  backoff?: BackoffOptions;
  now?: () => number;
  /** On changes only. 'logged-out': the link is dead and the channel has stopped for good. */
  onHealth?(state: WhatsAppHealth): void;
  /** Someone other than us is typing in a registered chat. */
  onTyping?(chatJid: string): void;
}

export class WhatsAppChannel implements Channel {
  readonly name = 'whatsapp';
  readonly maxTextLength = 4096;
  private sock: WASocketLike | undefined;
  /** Set from connect() until disconnect() or a close that stops for good. */
  private auth: Awaited<ReturnType<typeof loadAuthState>> | undefined;
  private connected = false;
  private health: WhatsAppHealth | undefined;
  /** Chats whose presence the current socket is subscribed to. */
  private subscribed = new Set<string>();
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  /** One message at a time, so they are stored in order. */
  private inbound = Promise.resolve();
  private readonly log = baileysLogger();
  private readonly jids = new JidTranslator(() => this.sock);

  constructor(private readonly deps: WhatsAppDeps) {}

  /** Starts connecting in the background; never throws, so the host starts without WhatsApp. */
  async connect(): Promise<void> {
    const { authDir } = this.deps;
    if (this.auth) return;
    if (!isWhatsAppLinked(authDir)) return logger.warn({ authDir }, `WhatsApp is not linked; ${HOW_TO_LINK}`);
    try {
      this.auth = await loadAuthState(authDir, this.log);
    } catch (err) {
      return logger.error({ err, authDir }, 'WhatsApp credentials could not be read');
    }
    this.openSocket();
  }

  async disconnect(): Promise<void> {
    this.halt();
    // Received messages reach the store, but a slow download never holds up shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.inbound, new Promise((done) => (timer = setTimeout(done, SHUTDOWN_WAIT_MS)))]);
    clearTimeout(timer);
  }

  isConnected(): boolean {
    return this.connected;
  }

  ownsJid(jid: string): boolean {
    return /@(s\.whatsapp\.net|g\.us|lid)$/.test(jid);
  }

  ownJid(): string | undefined {
    const id = this.sock?.user?.id;
    return id && jidNormalizedUser(id);
  }

  settled(): Promise<void> {
    return this.inbound;
  }

  async sendMessage(jid: string, text: string): Promise<void> {
    if (!VALID_JID.test(jid)) throw new ChannelSendError(`not a WhatsApp chat: ${jid}`, 'permanent');
    const sock = this.sock;
    if (!sock || !this.connected) throw new ChannelSendError('whatsapp is not connected', 'transient');
    // On a shared number the prefix tells the assistant apart (also when it echoes back to us).
    const prefix = this.deps.assistantHasOwnNumber ? '' : `${this.deps.assistantName}: `;
    // The socket type names text only; Baileys takes image and document content too.
    const content = outgoingContent(this.deps.filesDir, text, prefix);
    await sock.sendMessage(jid, content).catch((err: unknown) => {
      throw toSendError(err);
    });
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    if (!this.connected) return;
    await this.sock
      ?.sendPresenceUpdate(isTyping ? 'composing' : 'paused', jid)
      .catch((err: unknown) => logger.debug({ err, jid }, 'whatsapp typing update failed'));
  }

  /** At most daily unless forced. */
  async syncGroups(force: boolean): Promise<void> {
    const { sock, deps } = this;
    if (!sock || !this.connected) return logger.info('whatsapp not connected; group sync skipped');
    if (!force && this.now() - Date.parse(deps.syncState.get(SYNC_KEY) ?? '') < SYNC_INTERVAL_MS) return;
    const fetched = await sock
      .groupFetchAllParticipating()
      .catch((err: unknown) => logger.warn({ err }, 'whatsapp group sync failed'));
    if (!fetched) return;
    const groups = Object.entries(fetched).map(([key, g]) => {
      const jid = g.id || key;
      // The creation time, not now: the chat list orders by last message, and a sync is not one.
      const timestamp = new Date((g.creation ?? 0) * 1000).toISOString();
      deps.callbacks.onChatMetadata({ jid, name: g.subject, timestamp, channel: 'whatsapp', isGroup: true });
      return { jid, name: g.subject };
    });
    deps.onGroupsSynced?.(groups);
    deps.syncState.set(SYNC_KEY, new Date(this.now()).toISOString());
    logger.info({ count: groups.length }, 'whatsapp groups synced');
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private setHealth(state: WhatsAppHealth): void {
    if (state === this.health) return;
    this.health = state;
    this.deps.onHealth?.(state);
  }

  private subscribe(sock: WASocketLike, jid: string): void {
    if (sock !== this.sock || this.subscribed.has(jid) || !this.ownsJid(jid)) return;
    this.subscribed.add(jid);
    sock.presenceSubscribe(jid).catch((err: unknown) => {
      this.subscribed.delete(jid);
      logger.debug({ err, jid }, 'whatsapp presence subscription failed');
    });
  }

  private async onPresence(sock: WASocketLike, update: BaileysEventMap['presence.update']): Promise<void> {
    const own = [sock.user?.id, sock.user?.lid].map((jid) => jid && jidNormalizedUser(jid));
    const typing = Object.entries(update.presences).some(
      ([who, p]) => p.lastKnownPresence === 'composing' && !own.includes(jidNormalizedUser(who)),
    );
    if (!typing) return;
    const chatJid = await this.jids.toPhoneJid(update.id);
    if (this.deps.registeredGroups().has(chatJid)) this.deps.onTyping?.(chatJid);
  }

  private openSocket(): void {
    const auth = this.auth;
    if (!auth) return;
    let sock: WASocketLike;
    try {
      sock = (this.deps.makeSocket ?? defaultMakeSocket)({ auth: auth.state, logger: this.log });
    } catch (err) {
      logger.error({ err }, 'whatsapp socket could not be created');
      this.setHealth('down');
      return this.reconnect(backoffDelay(this.attempt++, this.deps.backoff));
    }
    this.sock = sock;
    this.subscribed = new Set();
    sock.ev.on('creds.update', () => {
      auth.saveCreds().catch((err: unknown) => logger.error({ err }, 'whatsapp credentials not saved'));
    });
    sock.ev.on('connection.update', (update) => this.onConnectionUpdate(sock, update));
    sock.ev.on('messages.upsert', ({ type, messages }) => {
      if (type === 'notify' || type === 'append') this.receive(sock, messages);
    });
    sock.ev.on('lid-mapping.update', ({ lid, pn }) => this.jids.remember(lid, pn));
    sock.ev.on('presence.update', (update) => {
      if (sock !== this.sock) return;
      this.onPresence(sock, update).catch((err: unknown) =>
        logger.debug({ err }, 'whatsapp presence update not handled'),
      );
    });
  }

  private onConnectionUpdate(sock: WASocketLike, update: BaileysEventMap['connection.update']): void {
    if (sock !== this.sock || !this.auth) return; // a socket we already left behind
    if (update.qr) {
      // Offered only when the stored link is no longer valid; the host cannot show it.
      logger.error(`WhatsApp needs to be linked again; ${HOW_TO_LINK}`);
      this.halt();
      this.setHealth('logged-out');
    } else if (update.connection === 'open') this.onOpen(sock);
    else if (update.connection === 'close') this.onClose(disconnectStatusCode(update.lastDisconnect?.error));
  }

  private onOpen(sock: WASocketLike): void {
    this.connected = true;
    this.attempt = 0;
    this.jids.remember(sock.user?.lid, sock.user?.id); // the self-chat arrives under our own LID
    logger.info({ jid: this.ownJid() }, 'whatsapp connected');
    this.setHealth('up');
    for (const jid of this.deps.registeredGroups().keys()) this.subscribe(sock, jid);
    const sync = () => {
      this.syncGroups(false).catch((err: unknown) => logger.error({ err }, 'whatsapp group sync failed'));
    };
    this.syncTimer ??= setInterval(sync, SYNC_INTERVAL_MS);
    sync();
  }

  private onClose(statusCode: number | undefined): void {
    this.connected = false;
    const stop = stopReason(statusCode);
    if (stop) {
      logger.error({ statusCode }, stop);
      this.halt();
      // Replaced by another client: the link itself still works.
      return this.setHealth(statusCode === DisconnectReason.connectionReplaced ? 'down' : 'logged-out');
    }
    this.setHealth('down');
    // Normal right after linking: the server asks for a fresh connection at once.
    const immediate = statusCode === DisconnectReason.restartRequired;
    const delayMs = immediate ? 0 : backoffDelay(this.attempt++, this.deps.backoff);
    logger.warn({ statusCode, delayMs }, 'whatsapp connection closed; reconnecting');
    this.reconnect(delayMs);
  }

  private reconnect(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.openSocket(), delayMs);
  }

  /** Stops until the next connect(): no socket, no timers, no reconnects. */
  private halt(): void {
    this.auth = undefined;
    this.connected = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    // Ended on a later tick: this may run inside one of the socket's own event handlers.
    Promise.resolve(this.sock)
      .then((sock) => sock?.end(undefined))
      .catch((err: unknown) => logger.debug({ err }, 'whatsapp socket end failed'));
    this.sock = undefined;
  }

  private receive(sock: WASocketLike, messages: WAMessage[]): void {
    this.inbound = this.inbound.then(async () => {
      for (const msg of messages) {
        await this.handleMessage(sock, msg).catch((err: unknown) =>
          logger.error({ err, id: msg.key.id }, 'whatsapp message not handled'),
        );
      }
    });
  }

  private async handleMessage(sock: WASocketLike, msg: WAMessage): Promise<void> {
    const { key } = msg;
    // Status updates, broadcast lists and channels are not chats the assistant takes part in.
    if (!key.remoteJid || isJidBroadcast(key.remoteJid) || isJidNewsletter(key.remoteJid)) return;
    const content = normalizeMessageContent(msg.message);
    if (!content || content.protocolMessage || content.reactionMessage) return;

    const chatJid = await this.jids.toPhoneJid(key.remoteJid, key.remoteJidAlt);
    const seconds = toNumber(msg.messageTimestamp);
    const timeMs = seconds > 0 ? seconds * 1000 : this.now();
    const timestamp = new Date(timeMs).toISOString();
    const isGroup = isJidGroup(chatJid) === true;
    this.deps.callbacks.onChatMetadata({ jid: chatJid, timestamp, channel: 'whatsapp', isGroup });

    const group = this.deps.registeredGroups().get(chatJid);
    const text = extractText(content);
    const media = findMedia(content);
    if (group) this.subscribe(sock, chatJid);
    if (!group || (!text && !media)) return;
    const fromMe = key.fromMe === true;
    const sender =
      (fromMe && this.ownJid()) ||
      (isGroup ? await this.jids.toPhoneJid(key.participant || chatJid, key.participantAlt) : chatJid);
    // On a shared number the assistant's replies echo back as the person's own, with the prefix.
    const { assistantName, assistantHasOwnNumber: ownNumber } = this.deps;
    const isBotMessage = fromMe && (ownNumber || text.startsWith(`${assistantName}:`));
    let body = text;
    if (media && !isBotMessage) {
      const saved = await saveMedia({
        ipcDir: this.deps.ipcDir,
        tmpDir: this.deps.mediaTmpDir,
        folder: group.folder,
        message: msg,
        media,
        timeMs,
        sock,
        download: this.deps.downloadMedia,
        maxBytes: this.deps.maxMediaBytes,
        timeoutMs: this.deps.mediaTimeoutMs,
      });
      body = describeMedia(media, saved, text);
    }
    this.deps.callbacks.onMessage({
      id: key.id || `${chatJid}-${timeMs}`,
      chatJid,
      sender,
      senderName: msg.pushName || sender.replace(/[:@].*/, ''),
      content: body,
      timestamp,
      isFromMe: fromMe,
      isBotMessage,
    });
  }
}
