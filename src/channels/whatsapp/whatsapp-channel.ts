import {
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  jidNormalizedUser,
  type BaileysEventMap,
  type WAMessage,
} from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';
import type { Channel, ChannelCallbacks, RegisteredGroup } from '../../types.js';
import {
  extractText,
  findMedia,
  isAssistantMessage,
  jidUser,
  messageTimeMs,
  unwrapContent,
} from './inbound.js';
import { GROUP_SYNC_INTERVAL_MS, GroupSync } from './group-sync.js';
import { JidTranslator } from './jids.js';
import {
  baileysMediaDownloader,
  DEFAULT_MAX_MEDIA_BYTES,
  DEFAULT_MEDIA_TIMEOUT_MS,
  describeMedia,
  saveMedia,
  type MediaDownloader,
  type SaveMediaResult,
} from './media.js';
import { Outbox } from './outbox.js';
import { backoffDelay, decideOnClose, DEFAULT_BACKOFF, type BackoffOptions } from './reconnect-policy.js';
import {
  baileysLogger,
  defaultMakeSocket,
  disconnectStatusCode,
  isWhatsAppLinked,
  loadAuthState,
  type LoadedAuth,
  type MakeSocket,
  type WASocketLike,
} from './socket.js';

export { isWhatsAppLinked, linkedAccountJid } from './socket.js';
export type { WASocketLike, MakeSocket, MakeSocketOptions } from './socket.js';
export type { MediaDownloader } from './media.js';

const SHUTDOWN_WAIT_MS = 5000;
const HOW_TO_LINK = 'run `nanoclaw whatsapp-auth` to link it';

export interface WhatsAppDeps {
  /** $NANOCLAW_HOME/store/auth */
  authDir: string;
  /** data/ipc: attachments go to <folder>/to-agent/media/ */
  ipcDir: string;
  /** Host-private folder for downloads in progress. */
  mediaTmpDir: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
  callbacks: ChannelCallbacks;
  /** Registered groups keyed by chat jid; asked on every message, so registrations apply at once. */
  registeredGroups(): Map<string, RegisteredGroup>;
  /** The groups WhatsApp says we are in (feeds main's available_groups.json). */
  onGroupsSynced?(groups: Array<{ jid: string; name: string }>): void;
  /** Remembers the last group sync across restarts (the store's state repo fits). */
  syncState?: { get(key: string): string | undefined; set(key: string, value: string): void };
  makeSocket?: MakeSocket;
  downloadMedia?: MediaDownloader;
  maxMediaBytes?: number;
  mediaTimeoutMs?: number;
  backoff?: BackoffOptions;
  now?: () => number;
}

export class WhatsAppChannel implements Channel {
  readonly name = 'whatsapp';

  private sock: WASocketLike | undefined;
  private auth: LoadedAuth | undefined;
  private connected = false;
  /** Between connect() and disconnect() or a reason that stops the channel for good. */
  private running = false;
  private reconnectAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private groupSyncTimer: NodeJS.Timeout | undefined;
  /** Inbound messages are handled one at a time, so they are stored in the order they came. */
  private inbound: Promise<void> = Promise.resolve();
  private readonly outbox: Outbox;
  private readonly jids: JidTranslator;
  private readonly groupSync: GroupSync;
  private readonly baileysLog = baileysLogger();
  private readonly makeSocket: MakeSocket;
  private readonly downloadMedia: MediaDownloader;
  private readonly now: () => number;

  constructor(private readonly deps: WhatsAppDeps) {
    this.makeSocket = deps.makeSocket ?? defaultMakeSocket;
    this.downloadMedia = deps.downloadMedia ?? baileysMediaDownloader(this.baileysLog);
    this.now = deps.now ?? Date.now;
    this.groupSync = new GroupSync({ ...deps, now: this.now });
    this.jids = new JidTranslator(() => this.sock?.signalRepository?.lidMapping);
    this.outbox = new Outbox(async (jid, text) => {
      const sock = this.sock;
      if (!sock) throw new Error('not connected');
      await sock.sendMessage(jid, { text });
    });
  }

  /** Starts connecting in the background; never throws, so the host starts without WhatsApp. */
  async connect(): Promise<void> {
    if (this.running) return;
    if (!isWhatsAppLinked(this.deps.authDir)) {
      logger.warn({ authDir: this.deps.authDir }, `WhatsApp is not linked; ${HOW_TO_LINK}`);
      return;
    }
    try {
      this.auth = await loadAuthState(this.deps.authDir, this.baileysLog);
    } catch (err) {
      logger.error({ err, authDir: this.deps.authDir }, 'WhatsApp credentials could not be read');
      return;
    }
    this.running = true;
    this.openSocket();
  }

  async disconnect(): Promise<void> {
    this.halt();
    // Let messages already received reach the store, but never hold up shutdown on a slow download.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.inbound,
      new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (this.outbox.size > 0)
      logger.warn({ queued: this.outbox.size }, 'whatsapp disconnected with unsent messages');
  }

  isConnected(): boolean {
    return this.connected;
  }

  ownsJid(jid: string): boolean {
    return /@(s\.whatsapp\.net|g\.us|lid)$/.test(jid);
  }

  /** Our own phone jid once connected: the self-chat, which can be registered as main. */
  ownJid(): string | undefined {
    const id = this.sock?.user?.id;
    return id ? jidNormalizedUser(id) : undefined;
  }

  /** Resolves once every inbound message received so far has been handled. */
  settled(): Promise<void> {
    return this.inbound;
  }

  async sendMessage(jid: string, text: string): Promise<void> {
    // On a shared number the prefix is how people (and we, when it echoes back) tell the assistant apart.
    const body = this.deps.assistantHasOwnNumber ? text : `${this.deps.assistantName}: ${text}`;
    this.outbox.enqueue(jid, body);
    if (!this.connected) {
      logger.info({ jid, queued: this.outbox.size }, 'whatsapp not connected; message queued');
      return;
    }
    await this.outbox.flush(() => this.connected);
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    if (!this.connected || !this.sock) return;
    try {
      await this.sock.sendPresenceUpdate(isTyping ? 'composing' : 'paused', jid);
    } catch (err) {
      logger.debug({ err, jid }, 'whatsapp typing update failed');
    }
  }

  /** Fetches the groups we are in; at most daily unless forced. Never throws. */
  async syncGroups(force: boolean): Promise<void> {
    const sock = this.sock;
    if (!sock || !this.connected) {
      logger.info('whatsapp not connected; group sync skipped');
      return;
    }
    await this.groupSync.run(sock, force);
  }

  private openSocket(): void {
    const auth = this.auth;
    if (!this.running || !auth) return;
    let sock: WASocketLike;
    try {
      sock = this.makeSocket({ auth: auth.state, logger: this.baileysLog });
    } catch (err) {
      logger.error({ err }, 'whatsapp socket could not be created');
      this.scheduleReconnect(backoffDelay(this.reconnectAttempt++, this.deps.backoff ?? DEFAULT_BACKOFF));
      return;
    }
    this.sock = sock;
    sock.ev.on('creds.update', () => {
      auth.saveCreds().catch((err: unknown) => logger.error({ err }, 'whatsapp credentials not saved'));
    });
    sock.ev.on('connection.update', (update) => this.onConnectionUpdate(sock, update));
    sock.ev.on('messages.upsert', (upsert) => this.onUpsert(sock, upsert));
    sock.ev.on('lid-mapping.update', (mapping) => this.jids.remember(mapping.lid, mapping.pn));
  }

  private onConnectionUpdate(sock: WASocketLike, update: BaileysEventMap['connection.update']): void {
    if (sock !== this.sock || !this.running) return; // a socket we already left behind
    if (update.qr) {
      // Baileys offers a QR only when the stored link is no longer valid; the host cannot show it.
      logger.error(`WhatsApp needs to be linked again; ${HOW_TO_LINK}`);
      this.halt();
      return;
    }
    if (update.connection === 'open') this.onOpen(sock);
    else if (update.connection === 'close') this.onClose(update.lastDisconnect?.error);
  }

  private onOpen(sock: WASocketLike): void {
    this.connected = true;
    this.reconnectAttempt = 0;
    this.jids.setOwnIdentity(sock.user);
    logger.info({ jid: this.ownJid(), queued: this.outbox.size }, 'whatsapp connected');
    this.outbox
      .flush(() => this.connected && this.sock === sock)
      .catch((err: unknown) => logger.error({ err }, 'whatsapp outbox flush failed'));
    this.groupSyncTimer ??= setInterval(() => this.syncGroupsInBackground(), GROUP_SYNC_INTERVAL_MS);
    this.syncGroupsInBackground();
  }

  private syncGroupsInBackground(): void {
    this.syncGroups(false).catch((err: unknown) => logger.error({ err }, 'whatsapp group sync failed'));
  }

  private onClose(error: unknown): void {
    this.connected = false;
    const statusCode = disconnectStatusCode(error);
    const decision = decideOnClose(statusCode);
    if (decision.action === 'stop') {
      logger.error({ statusCode }, decision.message);
      this.halt();
      return;
    }
    const delayMs = decision.immediate
      ? 0
      : backoffDelay(this.reconnectAttempt++, this.deps.backoff ?? DEFAULT_BACKOFF);
    logger.warn({ reason: decision.reason, statusCode, delayMs }, 'whatsapp connection closed; reconnecting');
    this.scheduleReconnect(delayMs);
  }

  private scheduleReconnect(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.openSocket();
    }, delayMs);
  }

  /** Stops for good until the next connect(): no socket, no timers, no reconnects. */
  private halt(): void {
    this.running = false;
    this.connected = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearInterval(this.groupSyncTimer);
    this.groupSyncTimer = undefined;
    const sock = this.sock;
    this.sock = undefined;
    if (sock) {
      Promise.resolve()
        .then(() => sock.end(undefined))
        .catch((err: unknown) => logger.debug({ err }, 'whatsapp socket end failed'));
    }
  }

  private onUpsert(sock: WASocketLike, upsert: BaileysEventMap['messages.upsert']): void {
    if (upsert.type !== 'notify' && upsert.type !== 'append') return;
    const messages = upsert.messages;
    this.inbound = this.inbound.then(async () => {
      for (const message of messages) {
        try {
          await this.handleMessage(sock, message);
        } catch (err) {
          logger.error({ err, id: message.key.id }, 'whatsapp message not handled');
        }
      }
    });
  }

  private async handleMessage(sock: WASocketLike, msg: WAMessage): Promise<void> {
    const rawJid = msg.key.remoteJid;
    // Status updates, broadcast lists and channels are not chats the assistant takes part in.
    if (!rawJid || isJidBroadcast(rawJid) || isJidNewsletter(rawJid)) return;
    const content = unwrapContent(msg.message);
    if (!content || content.protocolMessage || content.reactionMessage) return;

    const chatJid = await this.jids.toPhoneJid(rawJid, msg.key.remoteJidAlt);
    const timeMs = messageTimeMs(msg.messageTimestamp, this.now());
    const timestamp = new Date(timeMs).toISOString();
    const isGroup = isJidGroup(chatJid) === true;
    this.deps.callbacks.onChatMetadata({ jid: chatJid, timestamp, channel: 'whatsapp', isGroup });

    const group = this.deps.registeredGroups().get(chatJid);
    if (!group) return;
    const text = extractText(content);
    const media = findMedia(content);
    if (!text && !media) return;

    const fromMe = msg.key.fromMe === true;
    const sender = await this.senderJid(msg, chatJid, isGroup, fromMe);
    const isBotMessage = isAssistantMessage({
      fromMe,
      text,
      assistantName: this.deps.assistantName,
      assistantHasOwnNumber: this.deps.assistantHasOwnNumber,
    });
    let body = text;
    if (media && !isBotMessage) {
      const saved = await this.saveAttachment(sock, msg, group, media, timeMs);
      body = describeMedia(media, saved, text);
    }
    this.deps.callbacks.onMessage({
      id: msg.key.id || `${chatJid}-${timeMs}`,
      chatJid,
      sender,
      senderName: msg.pushName || jidUser(sender),
      content: body,
      timestamp,
      isFromMe: fromMe,
      isBotMessage,
    });
  }

  private async senderJid(
    msg: WAMessage,
    chatJid: string,
    isGroup: boolean,
    fromMe: boolean,
  ): Promise<string> {
    const own = fromMe ? this.ownJid() : undefined;
    if (own) return own;
    if (!isGroup) return chatJid;
    return this.jids.toPhoneJid(msg.key.participant || chatJid, msg.key.participantAlt);
  }

  private async saveAttachment(
    sock: WASocketLike,
    message: WAMessage,
    group: RegisteredGroup,
    media: NonNullable<ReturnType<typeof findMedia>>,
    timeMs: number,
  ): Promise<SaveMediaResult> {
    try {
      const saved = await saveMedia({
        ipcDir: this.deps.ipcDir,
        tmpDir: this.deps.mediaTmpDir,
        folder: group.folder,
        message,
        media,
        timeMs,
        sock,
        download: this.downloadMedia,
        maxBytes: this.deps.maxMediaBytes ?? DEFAULT_MAX_MEDIA_BYTES,
        timeoutMs: this.deps.mediaTimeoutMs ?? DEFAULT_MEDIA_TIMEOUT_MS,
      });
      if (!saved.ok)
        logger.warn({ folder: group.folder, reason: saved.reason }, 'whatsapp attachment not saved');
      return saved;
    } catch (err) {
      logger.error({ err, folder: group.folder }, 'whatsapp attachment not saved');
      return { ok: false, reason: 'the media folder could not be written' };
    }
  }
}
