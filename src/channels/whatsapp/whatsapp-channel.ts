import { setTimeout as sleep } from 'node:timers/promises';
import * as wa from '@whiskeysockets/baileys';
import type { ChannelState } from '../../channel-health.js';
import { logger } from '../../logger.js';
import type { Channel, ChannelCallbacks, RegisteredGroup } from '../../types.js';
import { ChannelSendError } from '../send-error.js';
import { endLater, isWhatsAppLinked } from './link-state.js';
import { describeMedia, findMedia, outgoingContent, saveMedia, type SaveMediaOptions } from './media.js';
import { disconnectStatusCode, toSendError, withAuth, type MakeSocket } from './socket.js';

const LINK = 'run `nanoclaw whatsapp-auth` to link it';
const { loggedOut, connectionReplaced, forbidden, multideviceMismatch, restartRequired } =
  wa.DisconnectReason;

export interface WhatsAppDeps {
  authDir: string;
  ipcDir: string;
  tmpDir: string;
  filesDir?: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
  callbacks: ChannelCallbacks;
  registeredGroups(): Map<string, RegisteredGroup>;
  onGroupsSynced?(): void;
  makeSocket?: MakeSocket;
  media?: Partial<SaveMediaOptions>;
  onHealth?(state: ChannelState): void;
  onTyping?(chatJid: string): void;
}

export class WhatsAppChannel implements Channel {
  readonly name = 'whatsapp';
  readonly maxTextLength = 4096;
  private sock?: wa.WASocket;
  private auth?: Awaited<ReturnType<typeof withAuth>>;
  private connected = false;
  private attempt = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private syncTimer?: NodeJS.Timeout;
  private inbound = Promise.resolve(); // in order

  constructor(private readonly deps: WhatsAppDeps) {}

  async connect() {
    if (this.auth) return;
    if (!isWhatsAppLinked(this.deps.authDir)) return logger.warn(`WhatsApp is not linked; ${LINK}`);
    this.auth = await withAuth(this.deps.authDir, this.deps.makeSocket);
    this.open();
  }

  async disconnect() {
    this.halt();
    // A slow download never holds up shutdown.
    await Promise.race([this.inbound, sleep(5000, undefined, { ref: false })]);
  }

  isConnected = () => this.connected;
  ownsJid = (jid: string) => /^(\d{5,20}@s\.whatsapp\.net|\d+(-\d+)?@g\.us|\d+@lid)$/.test(jid);
  ownJid = () => this.sock?.user && wa.jidNormalizedUser(this.sock.user.id);
  settled = () => this.inbound;

  async sendMessage(jid: string, text: string) {
    if (!this.ownsJid(jid)) throw new ChannelSendError(`not a WhatsApp chat: ${jid}`, 'permanent');
    const sock = this.connected && this.sock;
    if (!sock) throw new ChannelSendError('whatsapp is not connected', 'transient');
    const { assistantHasOwnNumber, assistantName, filesDir } = this.deps;
    const content = outgoingContent(filesDir, text, assistantHasOwnNumber ? '' : `${assistantName}: `);
    await sock.sendMessage(jid, content).catch((err) => Promise.reject(toSendError(err)));
  }

  async setTyping(jid: string, on: boolean) {
    if (this.connected) await this.sock?.sendPresenceUpdate(on ? 'composing' : 'paused', jid).catch(() => {});
  }

  async syncGroups() {
    const sock = this.connected && this.sock;
    if (!sock) return;
    const groups = Object.values(await sock.groupFetchAllParticipating());
    // Timed at creation: a sync is no new message.
    for (const { id: jid, subject: name, creation = 0 } of groups) {
      const timestamp = new Date(creation * 1000).toISOString();
      this.deps.callbacks.onChatMetadata({ jid, name, timestamp, channel: 'whatsapp', isGroup: true });
    }
    this.deps.onGroupsSynced?.();
  }

  // Chats are registered by phone jid; Baileys maps a LID when it knows one.
  private async typing(id: string) {
    const jid = await this.toPhoneJid(id);
    if (this.deps.registeredGroups().has(jid)) this.deps.onTyping?.(jid);
  }

  private async toPhoneJid(jid: string, alternate?: string | null) {
    if (!wa.isLidUser(jid)) return jid;
    const pn = wa.isPnUser(alternate ?? undefined)
      ? alternate
      : await this.sock?.signalRepository.lidMapping.getPNForLID(jid).catch(() => null);
    return pn ? wa.jidNormalizedUser(pn) : jid;
  }

  private open() {
    const auth = this.auth!;
    const sock = (this.sock = auth.open());
    const handle = (what: string, work: Promise<unknown>) =>
      work.catch((err) => logger.error({ err }, `whatsapp ${what} failed`));
    sock.ev.on('creds.update', () => handle('creds save', auth.saveCreds()));
    sock.ev.on('messages.upsert', ({ messages }) => {
      this.inbound = this.inbound.then(async () => {
        for (const msg of messages) await handle('message', this.receive(sock, msg));
      });
    });
    sock.ev.on('presence.update', ({ id, presences }) => {
      if (Object.values(presences).some((p) => p.lastKnownPresence === 'composing'))
        void handle('presence', this.typing(id));
    });
    sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
      if (sock !== this.sock) return;
      // A QR: the stored link is no longer valid.
      if (qr) return this.halt(`WhatsApp needs to be linked again; ${LINK}`, 'logged-out');
      if (connection === 'close') return this.closed(disconnectStatusCode(lastDisconnect?.error));
      if (connection !== 'open') return;
      this.connected = true;
      this.attempt = 0;
      logger.info('whatsapp connected');
      this.deps.onHealth?.('up');
      for (const jid of this.deps.registeredGroups().keys())
        if (this.ownsJid(jid)) sock.presenceSubscribe(jid).catch(() => {});
      if (this.syncTimer) return;
      const sync = () => handle('group sync', this.syncGroups());
      this.syncTimer = setInterval(sync, 86_400_000);
      void sync();
    });
  }

  private closed(code = 0) {
    this.connected = false;
    // Another client on this link: both would reconnect forever.
    if (code === connectionReplaced) return this.halt('WhatsApp was replaced by another connection', 'down');
    if ([loggedOut, forbidden, multideviceMismatch].includes(code))
      return this.halt(`WhatsApp logged out (${code}); ${LINK}`, 'logged-out');
    this.deps.onHealth?.('down');
    const delayMs = code === restartRequired ? 0 : Math.min(60_000, 1000 * 2 ** Math.min(this.attempt++, 6));
    logger.warn({ code, delayMs }, 'whatsapp connection closed; reconnecting');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delayMs);
  }

  private halt(why?: string, health?: ChannelState) {
    if (why) logger.error(why);
    if (this.sock) endLater(this.sock);
    this.auth = this.sock = undefined;
    this.connected = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    if (health) this.deps.onHealth?.(health);
  }

  private async receive(sock: wa.WASocket, message: wa.WAMessage) {
    const { key } = message;
    const { callbacks, assistantName, assistantHasOwnNumber } = this.deps;
    const c = wa.normalizeMessageContent(message.message);
    if (!key.remoteJid || wa.isJidBroadcast(key.remoteJid) || !c) return;
    const chatJid = await this.toPhoneJid(key.remoteJid, key.remoteJidAlt);
    const timeMs = wa.toNumber(message.messageTimestamp) * 1000 || Date.now();
    const timestamp = new Date(timeMs).toISOString();
    const isGroup = !!wa.isJidGroup(chatJid);
    callbacks.onChatMetadata({ jid: chatJid, timestamp, channel: 'whatsapp', isGroup });
    const group = this.deps.registeredGroups().get(chatJid);
    if (!group) return;
    sock.presenceSubscribe(chatJid).catch(() => {}); // also a chat registered since the connect
    const captioned = c.imageMessage ?? c.videoMessage ?? c.documentMessage;
    const text = c.conversation || c.extendedTextMessage?.text || captioned?.caption || '';
    const media = findMedia(c);
    if (!text && !media) return;
    const isFromMe = !!key.fromMe;
    const sender =
      (isFromMe && this.ownJid()) ||
      (isGroup ? await this.toPhoneJid(key.participant || chatJid, key.participantAlt) : chatJid);
    // On a shared number the assistant's replies echo back as our own, with the prefix.
    const isBotMessage = isFromMe && (assistantHasOwnNumber || text.startsWith(`${assistantName}:`));
    const content =
      media && !isBotMessage
        ? describeMedia(
            media,
            await saveMedia({
              ...this.deps,
              folder: group.folder,
              message,
              media,
              timeMs,
              sock,
              ...this.deps.media,
            }),
            text,
          )
        : text;
    callbacks.onMessage({
      id: key.id!,
      chatJid,
      sender,
      senderName: message.pushName || sender.replace(/[:@].*/, ''),
      content,
      timestamp,
      isFromMe,
      isBotMessage,
    });
  }
}
