import fs from 'node:fs';
import type { WASocket } from '@whiskeysockets/baileys';
import QRCode from 'qrcode';
import { isValidFolder } from '../../contract/ipc.js';
import { logger } from '../../logger.js';
import type { WhatsAppState } from '../control.js';
import { endLater, linkedAccountJid } from './link-state.js';
import type { MakeSocket, withAuth } from './socket.js';

type Baileys = typeof import('./socket.js');
type Auth = Awaited<ReturnType<typeof withAuth>>;

export interface WhatsAppLinkDeps {
  authDir: string;
  makeSocket?: MakeSocket;
  onLinked(selfJid: string): Promise<void>;
  onUnlinked(): Promise<void>; // stops the channel
  knownGroups(): { jid: string; name: string }[];
  isRegistered(jid: string): boolean;
  folderTaken(folder: string): boolean;
  registerGroup(
    jid: string,
    name: string,
    folder: string,
  ): Promise<{ ok: true; folder: string } | { ok: false; error: string }>;
}

// Links and unlinks WhatsApp at runtime; Baileys loads only then.
export class WhatsAppLink {
  private current: WhatsAppState;
  private readonly listeners = new Set<() => void>();
  private attempt = 0;
  private sock?: WASocket;
  private saved: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: WhatsAppLinkDeps) {
    const selfJid = linkedAccountJid(deps.authDir);
    this.current = selfJid ? { status: 'linked', selfJid } : { status: 'unlinked' };
  }

  state = () => this.current;

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async link({ phone }: { phone?: string }) {
    if (this.current.status === 'linked') return this.set({ ...this.current, error: 'Already linked' });
    const digits = phone?.replace(/\D/g, '');
    if (digits !== undefined && !/^\d{7,15}$/.test(digits))
      return this.set({ status: 'unlinked', error: 'Use the full number with country code' });
    const id = ++this.attempt;
    this.drop();
    this.set({ status: 'linking' });
    try {
      await this.clearCreds();
      const wa = await import('./socket.js');
      const auth = await wa.withAuth(this.deps.authDir, this.deps.makeSocket);
      if (id === this.attempt) this.open(id, wa, auth, digits);
    } catch (err) {
      await this.fail(id, err);
    }
  }

  private open(id: number, wa: Baileys, auth: Auth, digits?: string, shown = false) {
    const sock = (this.sock = auth.open());
    const live = () => sock === this.sock && id === this.attempt;
    sock.ev.on('creds.update', () => {
      this.saved = this.saved
        .then(auth.saveCreds)
        .catch((err) => logger.error({ err }, 'whatsapp creds not saved'));
    });
    sock.ev.on('connection.update', async ({ qr, connection, lastDisconnect }) => {
      if (!live()) return;
      // Ask for a pairing code once the connection takes requests: at the first QR.
      if (qr && !(digits && shown)) {
        shown = true;
        try {
          const s = digits
            ? { pairingCode: await sock.requestPairingCode(digits) }
            : { qrSvg: await QRCode.toString(qr, { type: 'svg' }) };
          if (live()) this.set({ status: 'linking', ...s });
        } catch (err) {
          await this.fail(id, err);
        }
      }
      if (connection === 'open') {
        this.drop(); // the channel opens its own
        const selfJid = wa.jidNormalizedUser(sock.user?.id);
        await this.saved;
        if (id !== this.attempt) return;
        this.set({ status: 'linked', selfJid });
        await this.deps.onLinked(selfJid).catch((err) => logger.error({ err }, 'whatsapp did not start'));
      }
      if (connection !== 'close') return;
      const { restartRequired, timedOut } = wa.DisconnectReason;
      const status = wa.disconnectStatusCode(lastDisconnect?.error);
      // Asked right after the phone accepts the link.
      if (status === restartRequired) return this.open(id, wa, auth, digits, true);
      await (shown && status === timedOut
        ? this.fail(id, 'The code expired; try again', 'unlinked')
        : this.fail(id, lastDisconnect?.error));
    });
  }

  private async fail(id: number, err: unknown, status: WhatsAppState['status'] = 'cannot-reach') {
    this.drop();
    await this.saved;
    if (id !== this.attempt) return;
    await this.clearCreds(); // no half-made link
    const why = err instanceof Error ? err.message : 'connection closed';
    this.set({ status, error: typeof err === 'string' ? err : `Cannot reach WhatsApp: ${why}` });
  }

  async unlink(loggedOut = false) {
    const { authDir, makeSocket } = this.deps;
    this.attempt++;
    this.drop();
    await this.deps.onUnlinked().catch((err) => logger.error({ err }, 'whatsapp channel did not stop'));
    // So the phone forgets this device.
    if (!loggedOut && linkedAccountJid(authDir))
      try {
        const sock = (await (await import('./socket.js')).withAuth(authDir, makeSocket)).open();
        await sock
          .waitForConnectionUpdate(async (u) => u.connection === 'open', 15_000)
          .then(() => sock.logout())
          .finally(() => endLater(sock));
      } catch (err) {
        logger.warn({ err }, 'whatsapp logout failed');
      }
    await this.clearCreds();
    const error = 'Logged out by WhatsApp; link again';
    this.set(loggedOut ? { status: 'logged-out', error } : { status: 'unlinked' });
  }

  loggedOut = async () => void (this.current.status === 'linked' && (await this.unlink(true)));

  groups() {
    return this.deps.knownGroups().map((g) => ({ ...g, registered: this.deps.isRegistered(g.jid) }));
  }

  async register(jid: string) {
    const group = this.deps.knownGroups().find((g) => g.jid === jid);
    if (!group || this.deps.isRegistered(jid))
      return { ok: false, error: 'Unknown or registered group' } as const;
    return this.deps.registerGroup(jid, group.name, folderFor(group.name, this.deps.folderTaken));
  }

  private drop() {
    if (this.sock) endLater(this.sock);
    this.sock = undefined;
  }

  private clearCreds = () => fs.promises.rm(this.deps.authDir, { recursive: true, force: true });

  private set(next: WhatsAppState) {
    this.current = next;
    for (const listener of this.listeners) listener();
  }
}

// `Family & Friends!` → `family-friends`, unique by a numeric suffix.
export function folderFor(name: string, taken: (folder: string) => boolean): string {
  const base =
    name
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '') || 'wa-group';
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? '' : `-${n}`;
    const folder = base.slice(0, 40 - suffix.length).replace(/-+$/, '') + suffix;
    if (isValidFolder(folder) && !taken(folder)) return folder;
  }
}
