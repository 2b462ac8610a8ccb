import { setTimeout as sleep } from 'node:timers/promises';
import * as wa from '@whiskeysockets/baileys';
import type { ChannelState } from '../../channel-health.js';
import { logger } from '../../logger.js';
import type { Channel, ChannelCallbacks, RegisteredGroup } from '../../types.js';
import { ChannelSendError } from '../send-error.js';
import { endLater, isWhatsAppLinked } from './link-state.js';
import { describeMedia, findMedia, outgoingContent, saveMedia, type SaveMediaOptions } from './media.js';
import { disconnectStatusCode, toSendError, withAuth, type MakeSocket } from './socket.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const SYNC_KEY = 'whatsapp_last_group_sync';
const HOW_TO_LINK = 'run `nanoclaw whatsapp-auth` to link it';
const RELINK = 'run `nanoclaw whatsapp-auth` to link again';
const VALID_JID = /^(\d{5,20}@s\.whatsapp\.net|\d+(-\d+)?@g\.us|\d+@lid)$/;
const { loggedOut, connectionReplaced, forbidden, multideviceMismatch, restartRequired } =
  wa.DisconnectReason;
// Close reasons a new connection cannot fix: stop rather than loop.
const STOP: Partial<Record<number, string>> = {
  [loggedOut]: `WhatsApp logged out; ${RELINK}`,
  [forbidden]: `WhatsApp refused this account (403); ${RELINK}`,
  [multideviceMismatch]: `WhatsApp multi-device mismatch; ${RELINK}`,
  // Another client on this link: each would kick the other out, forever. The link itself still works.
  [connectionReplaced]: 'WhatsApp was replaced by another connection on the same link; not reconnecting',
};

export interface WhatsAppDeps {
  authDir: string;
  ipcDir: string;
  mediaTmpDir: string;
  filesDir?: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
  callbacks: ChannelCallbacks;
  registeredGroups(): Map<string, RegisteredGroup>;
  onGroupsSynced?(groups: { jid: string; name: string }[]): void;
  syncState: { get(key: string): string | undefined; set(key: string, value: string): void };
  makeSocket?: MakeSocket;
  media?: Pick<SaveMediaOptions, 'download' | 'maxBytes' | 'timeoutMs'>;
  backoff?: { initialMs: number; maxMs: number };
  now?: () => number;
  onHealth?(state: ChannelState): void; // on changes
  onTyping?(chatJid: string): void; // someone else types in a registered chat
}

export class WhatsAppChannel implements Channel {
  readonly name = 'whatsapp';
  readonly maxTextLength = 4096;
  private sock: wa.WASocket | undefined;
  private auth: Awaited<ReturnType<typeof withAuth>> | undefined;
  private connected = false;
  private health: ChannelState | undefined;
  private subscribed = new Set<string>(); // to presence, on the current socket
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private inbound = Promise.resolve(); // one message at a time: stored in order

  constructor(private readonly deps: WhatsAppDeps) {}

  // Not linked: the host starts without WhatsApp.
  async connect(): Promise<void> {
    const { authDir, makeSocket } = this.deps;
    if (this.auth) return;
    if (!isWhatsAppLinked(authDir)) return logger.warn(`WhatsApp is not linked; ${HOW_TO_LINK}`);
    this.auth = await withAuth(authDir, makeSocket);
    this.openSocket();
  }

  async disconnect(): Promise<void> {
    this.halt();
    // Received messages reach the store, but a slow download never holds up shutdown.
    await Promise.race([this.inbound, sleep(5000, undefined, { ref: false })]);
  }

  isConnected = () => this.connected;
  ownsJid = (jid: string) => /@(s\.whatsapp\.net|g\.us|lid)$/.test(jid);
  ownJid = () => this.sock?.user && wa.jidNormalizedUser(this.sock.user.id);
  settled = () => this.inbound;
  private now = () => (this.deps.now ?? Date.now)();

  async sendMessage(jid: string, text: string): Promise<void> {
    if (!VALID_JID.test(jid)) throw new ChannelSendError(`not a WhatsApp chat: ${jid}`, 'permanent');
    const sock = this.connected && this.sock;
    if (!sock) throw new ChannelSendError('whatsapp is not connected', 'transient');
    // On a shared number the prefix tells the assistant apart (also when it echoes back to us).
    const prefix = this.deps.assistantHasOwnNumber ? '' : `${this.deps.assistantName}: `;
    await sock.sendMessage(jid, outgoingContent(this.deps.filesDir, text, prefix)).catch((err: unknown) => {
      throw toSendError(err);
    });
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    if (this.connected)
      await this.sock?.sendPresenceUpdate(isTyping ? 'composing' : 'paused', jid).catch(() => {});
  }

  async syncGroups(force: boolean): Promise<void> {
    const { deps } = this;
    const sock = this.connected && this.sock;
    if (!sock || (!force && this.now() - Date.parse(deps.syncState.get(SYNC_KEY) ?? '') < DAY_MS)) return;
    const fetched = await sock.groupFetchAllParticipating();
    const groups = Object.values(fetched).map(({ id: jid, subject: name, creation }) => {
      // The creation time: the chat list orders by last message, and a sync is none.
      const timestamp = new Date((creation ?? 0) * 1000).toISOString();
      deps.callbacks.onChatMetadata({ jid, name, timestamp, channel: 'whatsapp', isGroup: true });
      return { jid, name };
    });
    deps.onGroupsSynced?.(groups);
    deps.syncState.set(SYNC_KEY, new Date(this.now()).toISOString());
    logger.info({ count: groups.length }, 'whatsapp groups synced');
  }

  private setHealth(state: ChannelState): void {
    if (state === this.health) return;
    this.health = state;
    this.deps.onHealth?.(state);
  }

  // Groups are registered and senders known by phone jid; Baileys maps a LID (`<n>@lid`) when it knows one.
  private async toPhoneJid(jid: string, alternate?: string | null): Promise<string> {
    if (!wa.isLidUser(jid)) return jid;
    const pn = wa.isPnUser(alternate ?? undefined)
      ? alternate
      : await this.sock?.signalRepository.lidMapping.getPNForLID(jid).catch(() => null);
    return pn ? wa.jidNormalizedUser(pn) : jid;
  }

  private subscribe(sock: wa.WASocket, jid: string): void {
    if (sock !== this.sock || this.subscribed.has(jid) || !this.ownsJid(jid)) return;
    this.subscribed.add(jid);
    sock.presenceSubscribe(jid).catch(() => this.subscribed.delete(jid)); // retried on its next message
  }

  private openSocket(): void {
    const { auth } = this;
    if (!auth) return;
    const sock = (this.sock = auth.open());
    this.subscribed = new Set();
    const handle = (what: string, work: Promise<unknown>) =>
      work.catch((err: unknown) => logger.error({ err }, `whatsapp ${what} failed`));
    sock.ev.on('creds.update', () => handle('credentials save', auth.saveCreds()));
    sock.ev.on('messages.upsert', ({ messages }) => {
      this.inbound = this.inbound.then(async () => {
        for (const msg of messages) await handle('message', this.receive(sock, msg));
      });
    });
    sock.ev.on('presence.update', ({ id, presences }) => {
      const me = (who: string) => [sock.user?.id, sock.user?.lid].some((own) => wa.areJidsSameUser(own, who));
      const typing = Object.entries(presences).some(
        ([who, p]) => p.lastKnownPresence === 'composing' && !me(who),
      );
      if (typing && sock === this.sock)
        void handle(
          'presence',
          this.toPhoneJid(id).then(
            (jid) => this.deps.registeredGroups().has(jid) && this.deps.onTyping?.(jid),
          ),
        );
    });
    sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
      if (sock !== this.sock) return; // a socket we already left behind
      if (qr) {
        // Offered only when the stored link is no longer valid; the host cannot show it.
        logger.error(`WhatsApp needs to be linked again; ${HOW_TO_LINK}`);
        return this.halt('logged-out');
      }
      if (connection === 'close') return this.closed(disconnectStatusCode(lastDisconnect?.error));
      if (connection !== 'open') return;
      this.connected = true;
      this.attempt = 0;
      logger.info({ jid: this.ownJid() }, 'whatsapp connected');
      this.setHealth('up');
      for (const jid of this.deps.registeredGroups().keys()) this.subscribe(sock, jid);
      const sync = () => handle('group sync', this.syncGroups(false));
      this.syncTimer ??= setInterval(sync, DAY_MS);
      void sync();
    });
  }

  private closed(statusCode: number | undefined): void {
    this.connected = false;
    const stop = STOP[statusCode ?? 0];
    if (stop) {
      logger.error({ statusCode }, stop);
      return this.halt(statusCode === connectionReplaced ? 'down' : 'logged-out');
    }
    this.setHealth('down');
    const { initialMs, maxMs } = this.deps.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    const delayMs =
      statusCode === restartRequired ? 0 : Math.min(maxMs, initialMs * 2 ** Math.min(this.attempt++, 30));
    logger.warn({ statusCode, delayMs }, 'whatsapp connection closed; reconnecting');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.openSocket(), delayMs);
  }

  private halt(health?: ChannelState): void {
    if (this.sock) endLater(this.sock);
    this.auth = this.sock = undefined;
    this.connected = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    if (health) this.setHealth(health);
  }

  private async receive(sock: wa.WASocket, msg: wa.WAMessage): Promise<void> {
    const { key } = msg;
    const { callbacks, assistantName, assistantHasOwnNumber, ipcDir, mediaTmpDir: tmpDir } = this.deps;
    // Status updates, broadcast lists and channels are no chats.
    if (!key.remoteJid || wa.isJidBroadcast(key.remoteJid) || wa.isJidNewsletter(key.remoteJid)) return;
    const c = wa.normalizeMessageContent(msg.message);
    if (!c || c.protocolMessage || c.reactionMessage) return;
    const chatJid = await this.toPhoneJid(key.remoteJid, key.remoteJidAlt);
    const timeMs = wa.toNumber(msg.messageTimestamp) * 1000 || this.now();
    const timestamp = new Date(timeMs).toISOString();
    const isGroup = !!wa.isJidGroup(chatJid);
    callbacks.onChatMetadata({ jid: chatJid, timestamp, channel: 'whatsapp', isGroup });
    const group = this.deps.registeredGroups().get(chatJid);
    if (!group) return;
    this.subscribe(sock, chatJid);
    const captioned = c.imageMessage ?? c.videoMessage ?? c.documentMessage;
    const text = c.conversation || c.extendedTextMessage?.text || captioned?.caption || '';
    const media = findMedia(c);
    if (!text && !media) return;
    const isFromMe = key.fromMe === true;
    const sender =
      (isFromMe && this.ownJid()) ||
      (isGroup ? await this.toPhoneJid(key.participant || chatJid, key.participantAlt) : chatJid);
    // On a shared number the assistant's replies echo back as the person's own, with the prefix.
    const isBotMessage = isFromMe && (assistantHasOwnNumber || text.startsWith(`${assistantName}:`));
    let content = text;
    if (media && !isBotMessage) {
      const opts = {
        ipcDir,
        tmpDir,
        folder: group.folder,
        message: msg,
        media,
        timeMs,
        sock,
        ...this.deps.media,
      };
      content = describeMedia(media, await saveMedia(opts), text);
    }
    const id = key.id || `${chatJid}-${timeMs}`;
    const senderName = msg.pushName || sender.replace(/[:@].*/, '');
    callbacks.onMessage({ id, chatJid, sender, senderName, content, timestamp, isFromMe, isBotMessage });
  }
}
