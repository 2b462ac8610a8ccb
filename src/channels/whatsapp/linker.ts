import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder } from '../../contract/ipc.js';
import { logger } from '../../logger.js';
import type { WhatsAppControl, WhatsAppState } from '../control.js';
import type { WASocket } from '@whiskeysockets/baileys';
import { endLater, linkedAccountJid } from './link-state.js';
import type { MakeSocket } from './socket.js';

const PHONE_RULE = 'The phone number must be the full number with country code, e.g. 4915112345678';
type Registered = { ok: true; folder: string } | { ok: false; error: string };

export interface WhatsAppLinkDeps {
  authDir: string;
  makeSocket?: MakeSocket;
  onLinked(selfJid: string): Promise<void>;
  onUnlinked(): Promise<void>; // stops the channel before the logout: one connection per link
  knownGroups(): { jid: string; name: string }[];
  isRegistered(jid: string): boolean;
  folderTaken(folder: string): boolean;
  registerGroup(jid: string, name: string, folder: string): Promise<Registered>;
  logoutTimeoutMs?: number;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err ?? 'connection closed'));

// Links, unlinks and manages WhatsApp while the host runs; Baileys loads only then.
export class WhatsAppLink implements WhatsAppControl {
  private current: WhatsAppState;
  private readonly listeners = new Set<() => void>();
  private attempt = 0; // events of an older link attempt are ignored
  private sock: WASocket | undefined;

  constructor(private readonly deps: WhatsAppLinkDeps) {
    const selfJid = linkedAccountJid(deps.authDir);
    this.current = selfJid ? { status: 'linked', selfJid } : { status: 'unlinked' };
  }

  state = () => this.current;

  onChange(listener: () => void) {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async link({ phone }: { phone?: string }): Promise<void> {
    if (this.current.status === 'linked')
      return this.set({ ...this.current, error: 'WhatsApp is already linked' });
    const digits = phone?.replace(/[\s+().-]/g, '');
    if (digits !== undefined && !/^\d{7,15}$/.test(digits))
      return this.set({ status: 'unlinked', error: PHONE_RULE });
    const id = ++this.attempt;
    this.drop();
    this.set({ status: 'linking' });
    const ready = await Promise.all([import('./socket.js'), this.clearCreds()])
      .then(async ([wa]) => ({ wa, auth: await wa.withAuth(this.deps.authDir, this.deps.makeSocket) }))
      .catch((err: unknown) => {
        if (id === this.attempt)
          this.set({ status: 'unlinked', error: `Linking could not start: ${errorText(err)}` });
      });
    if (!ready || id !== this.attempt) return;
    const { wa, auth } = ready;
    const { restartRequired, loggedOut, timedOut } = wa.DisconnectReason;
    const code = digits ? 'pairing code' : 'QR code';
    let shownCode = false;
    let restarts = 0;
    let saved: Promise<unknown> = Promise.resolve();
    const fail = async (status: WhatsAppState['status'], error: string) => {
      this.drop();
      await saved;
      if (id !== this.attempt) return;
      await this.clearCreds(); // a half-made link must not count as linked on the next start
      this.set({ status, error });
    };
    const start = (): void => {
      const sock = (this.sock = auth.open());
      const live = () => sock === this.sock && id === this.attempt;
      sock.ev.on('creds.update', () => {
        saved = saved
          .then(auth.saveCreds)
          .catch((err: unknown) => logger.error({ err }, 'whatsapp credentials not saved'));
      });
      sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
        if (!live()) return;
        // A pairing code is asked on the first QR event: not before the connection takes requests.
        if (qr && !(digits && shownCode)) {
          shownCode = true;
          const shown = async (): Promise<Partial<WhatsAppState>> =>
            digits
              ? { pairingCode: (await sock.requestPairingCode(digits)).replace(/^(.{4})(.{4})$/, '$1-$2') }
              : { qrSvg: await wa.qrSvg(qr) };
          void shown().then(
            (s) => void (live() && this.set({ status: 'linking', ...s })),
            (err: unknown) =>
              void (live() && fail('cannot-reach', `Could not get a ${code}: ${errorText(err)}`)),
          );
        }
        if (connection === 'open') {
          this.sock = undefined;
          endLater(sock); // the channel opens its own: two on one link would replace each other
          const selfJid = wa.jidNormalizedUser(sock.user?.id) || linkedAccountJid(this.deps.authDir) || '';
          void saved.then(async () => {
            if (id !== this.attempt) return;
            this.set({ status: 'linked', selfJid });
            const error = await this.deps.onLinked(selfJid).then(() => undefined, errorText);
            if (error)
              this.set({ status: 'linked', selfJid, error: `Linked, but WhatsApp did not start: ${error}` });
          });
        } else if (connection === 'close') {
          const status = wa.disconnectStatusCode(lastDisconnect?.error);
          // Asked right after the phone accepts the link.
          if (status === restartRequired && restarts++ < 3) return start();
          const why = `${errorText(lastDisconnect?.error)}${status ? ` (status ${status})` : ''}`;
          void (status === loggedOut
            ? fail('logged-out', 'WhatsApp refused the link; try again')
            : shownCode && status === timedOut
              ? fail('unlinked', `The ${code} expired; try again`)
              : fail('cannot-reach', `Cannot reach WhatsApp: ${why}`));
        }
      });
    };
    start();
  }

  async unlink(): Promise<void> {
    await this.forget(true);
    this.set({ status: 'unlinked' });
  }

  async loggedOut(): Promise<void> {
    if (this.current.status !== 'linked') return;
    await this.forget(false);
    this.set({ status: 'logged-out', error: 'WhatsApp logged this device out; link it again' });
  }

  groups() {
    return this.deps.knownGroups().map((g) => ({ ...g, registered: this.deps.isRegistered(g.jid) }));
  }

  async register(jid: string): Promise<Registered> {
    const group = this.deps.knownGroups().find((g) => g.jid === jid);
    if (!group) return { ok: false, error: 'Not a WhatsApp group this account is in' };
    if (this.deps.isRegistered(jid)) return { ok: false, error: 'This group is already registered' };
    const folder = folderFor(group.name, (f) => this.deps.folderTaken(f));
    if (!folder) return { ok: false, error: 'No free folder name for this group' };
    return this.deps.registerGroup(jid, group.name, folder);
  }

  private async forget(logout: boolean): Promise<void> {
    this.attempt++;
    this.drop();
    await this.deps
      .onUnlinked()
      .catch((err: unknown) => logger.error({ err }, 'whatsapp channel did not stop'));
    if (logout && linkedAccountJid(this.deps.authDir)) await this.logout();
    await this.clearCreds();
  }

  // So the phone's list of linked devices forgets this one.
  private async logout(): Promise<void> {
    try {
      const { withAuth } = await import('./socket.js');
      const sock = (await withAuth(this.deps.authDir, this.deps.makeSocket)).open();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.deps.logoutTimeoutMs ?? 15_000);
        const done = () => (clearTimeout(timer), resolve());
        sock.ev.on('connection.update', ({ connection, qr }) => {
          if (connection === 'open')
            void sock
              .logout()
              .catch((err: unknown) => logger.warn({ err }, 'whatsapp logout failed'))
              .finally(done);
          else if (connection === 'close' || qr) done();
        });
      });
      endLater(sock);
    } catch (err) {
      logger.warn({ err }, 'whatsapp logout failed; the credentials are deleted anyway');
    }
  }

  private drop(): void {
    if (this.sock) endLater(this.sock);
    this.sock = undefined;
  }

  private async clearCreds(): Promise<void> {
    const { authDir } = this.deps;
    for (const entry of await fs.promises.readdir(authDir).catch(() => []))
      await fs.promises.rm(path.join(authDir, entry), { recursive: true, force: true });
  }

  private set(next: WhatsAppState): void {
    this.current = next;
    for (const listener of this.listeners) listener();
  }
}

// `Family & Friends!` → `family-friends`, unique by a numeric suffix; undefined when none is free.
export function folderFor(name: string, taken: (folder: string) => boolean): string | undefined {
  const base =
    name
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '') || 'wa-group';
  for (let n = 1; n < 1000; n++) {
    const suffix = n === 1 ? '' : `-${n}`;
    const folder = base.slice(0, 40 - suffix.length).replace(/-+$/, '') + suffix;
    if (isValidFolder(folder) && !taken(folder)) return folder;
  }
}
