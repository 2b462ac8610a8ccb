import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder } from '../../contract/ipc.js';
import { logger } from '../../logger.js';
import type { WhatsAppControl, WhatsAppState } from '../control.js';
import { linkedAccountJid } from './link-state.js';
import type { MakeSocket, WASocketLike } from './socket.js';

const MAX_FOLDER = 40;
const MAX_RESTARTS = 3;
const PHONE_RULE = 'The phone number must be the full number with country code, e.g. 4915112345678';

export interface WhatsAppLinkDeps {
  authDir: string;
  makeSocket?: MakeSocket;
  /** The account's own chat: register it as a main chat and start the channel. */
  onLinked(selfJid: string): Promise<void>;
  /** Stop the channel. Called before the logout, so only one connection uses the link. */
  onUnlinked(): Promise<void>;
  knownGroups(): { jid: string; name: string }[];
  isRegistered(jid: string): boolean;
  /** Used by a registered group or present under groups/. */
  folderTaken(folder: string): boolean;
  registerGroup(
    jid: string,
    name: string,
    folder: string,
  ): Promise<{ ok: true; folder: string } | { ok: false; error: string }>;
  logoutTimeoutMs?: number;
}

/**
 * Links, unlinks and manages WhatsApp while the host runs. Baileys is loaded on first use, so an
 * unlinked host never loads it.
 */
export class WhatsAppLink implements WhatsAppControl {
  private current: WhatsAppState;
  private readonly listeners = new Set<() => void>();
  /** Bumped by every link and unlink: events of an older attempt are ignored. */
  private attempt = 0;
  private sock: WASocketLike | undefined;

  constructor(private readonly deps: WhatsAppLinkDeps) {
    const selfJid = linkedAccountJid(deps.authDir);
    this.current = selfJid ? { status: 'linked', selfJid } : { status: 'unlinked' };
  }

  state(): WhatsAppState {
    return { ...this.current };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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
    const loaded = await this.prepare().catch((err: unknown) => {
      if (id === this.attempt)
        this.set({ status: 'unlinked', error: `Linking could not start: ${errorText(err)}` });
    });
    if (!loaded || id !== this.attempt) return;
    const { socket, DisconnectReason, jidNormalizedUser, QRCode, log, auth } = loaded;
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
    const start = () => {
      let sock: WASocketLike;
      try {
        sock = this.sock = (this.deps.makeSocket ?? socket.defaultMakeSocket)({
          auth: auth.state,
          logger: log,
        });
      } catch (err) {
        return void fail('cannot-reach', `Cannot reach WhatsApp: ${errorText(err)}`);
      }
      const live = () => sock === this.sock && id === this.attempt;
      sock.ev.on('creds.update', () => {
        saved = saved
          .then(() => auth.saveCreds())
          .catch((err: unknown) => logger.error({ err }, 'whatsapp credentials not saved'));
      });
      sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
        if (!live()) return;
        if (qr && digits) {
          // Asked on the first QR event: only then does the connection take the request.
          if (!shownCode)
            sock.requestPairingCode(digits).then(
              (code) =>
                live() &&
                this.set({ status: 'linking', pairingCode: code.replace(/^(.{4})(.{4})$/, '$1-$2') }),
              (err: unknown) =>
                live() && void fail('cannot-reach', `Could not get a pairing code: ${errorText(err)}`),
            );
          shownCode = true;
        } else if (qr) {
          shownCode = true;
          QRCode.toString(qr, { type: 'svg' }).then(
            (qrSvg) => live() && this.set({ status: 'linking', qrSvg }),
            (err: unknown) => logger.error({ err }, 'QR code not rendered'),
          );
        }
        if (connection === 'open') {
          this.sock = undefined;
          const jid = sock.user?.id ? jidNormalizedUser(sock.user.id) : undefined;
          void saved.then(async () => {
            if (id === this.attempt) await this.linked(sock, jid);
          });
        } else if (connection === 'close') {
          const status = socket.disconnectStatusCode(lastDisconnect?.error);
          // Right after the phone accepts the link, WhatsApp asks for a fresh connection.
          if (status === DisconnectReason.restartRequired && restarts++ < MAX_RESTARTS) return start();
          const code = digits ? 'pairing code' : 'QR code';
          if (status === DisconnectReason.loggedOut)
            void fail('logged-out', 'WhatsApp refused the link; try again');
          else if (shownCode && status === DisconnectReason.timedOut)
            void fail('unlinked', `The ${code} expired; try again`);
          else
            void fail('cannot-reach', `Cannot reach WhatsApp: ${errorText(lastDisconnect?.error, status)}`);
        }
      });
    };
    start();
  }

  async unlink(): Promise<void> {
    this.attempt++;
    this.drop();
    await this.deps
      .onUnlinked()
      .catch((err: unknown) => logger.error({ err }, 'whatsapp channel did not stop'));
    if (linkedAccountJid(this.deps.authDir)) await this.logout();
    await this.clearCreds();
    this.set({ status: 'unlinked' });
  }

  /** The channel found the link dead (removed on the phone): forget it. */
  async loggedOut(): Promise<void> {
    if (this.current.status !== 'linked') return;
    this.attempt++;
    await this.deps
      .onUnlinked()
      .catch((err: unknown) => logger.error({ err }, 'whatsapp channel did not stop'));
    await this.clearCreds();
    this.set({ status: 'logged-out', error: 'WhatsApp logged this device out; link it again' });
  }

  groups(): { jid: string; name: string; registered: boolean }[] {
    return this.deps.knownGroups().map((g) => ({ ...g, registered: this.deps.isRegistered(g.jid) }));
  }

  async register(jid: string): Promise<{ ok: true; folder: string } | { ok: false; error: string }> {
    const group = this.deps.knownGroups().find((g) => g.jid === jid);
    if (!group) return { ok: false, error: 'Not a WhatsApp group this account is in' };
    if (this.deps.isRegistered(jid)) return { ok: false, error: 'This group is already registered' };
    const folder = folderFor(group.name, (f) => this.deps.folderTaken(f));
    if (!folder) return { ok: false, error: 'No free folder name for this group' };
    return this.deps.registerGroup(jid, group.name, folder);
  }

  /** Baileys and the QR renderer on first use; fresh credentials. */
  private async prepare() {
    const [socket, { DisconnectReason, jidNormalizedUser }, { default: QRCode }] = await Promise.all([
      import('./socket.js'),
      import('@whiskeysockets/baileys'),
      import('qrcode'),
    ]);
    const log = socket.baileysLogger();
    await this.clearCreds();
    const auth = await socket.loadAuthState(this.deps.authDir, log);
    return { socket, DisconnectReason, jidNormalizedUser, QRCode, log, auth };
  }

  private async linked(sock: WASocketLike, jid: string | undefined): Promise<void> {
    endLater(sock); // the channel opens its own connection: two on one link would replace each other
    const selfJid = jid ?? linkedAccountJid(this.deps.authDir) ?? '';
    this.set({ status: 'linked', selfJid });
    await this.deps.onLinked(selfJid).catch((err: unknown) => {
      logger.error({ err }, 'whatsapp linked, but the channel did not start');
      this.set({ status: 'linked', selfJid, error: `Linked, but WhatsApp did not start: ${errorText(err)}` });
    });
  }

  /** With the stored link, so the phone's list of linked devices forgets this one. */
  private async logout(): Promise<void> {
    const socket = await import('./socket.js');
    const log = socket.baileysLogger();
    try {
      const auth = await socket.loadAuthState(this.deps.authDir, log);
      const sock = (this.deps.makeSocket ?? socket.defaultMakeSocket)({ auth: auth.state, logger: log });
      await new Promise<void>((done) => {
        const timer = setTimeout(done, this.deps.logoutTimeoutMs ?? 15_000);
        const finish = () => (clearTimeout(timer), done());
        sock.ev.on('connection.update', ({ connection, qr }) => {
          if (connection === 'open')
            sock
              .logout()
              .catch((err: unknown) => logger.warn({ err }, 'whatsapp logout failed'))
              .finally(finish);
          else if (connection === 'close' || qr) finish();
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
    const entries = await fs.promises.readdir(authDir).catch(() => []);
    for (const entry of entries)
      await fs.promises.rm(path.join(authDir, entry), { recursive: true, force: true });
  }

  private set(next: WhatsAppState): void {
    this.current = next;
    for (const listener of this.listeners)
      try {
        listener();
      } catch (err) {
        logger.error({ err }, 'whatsapp state listener failed');
      }
  }
}

/** `Family & Friends!` → `family-friends`; unique by a numeric suffix; undefined when none is free. */
export function folderFor(name: string, taken: (folder: string) => boolean): string | undefined {
  const base =
    name
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, MAX_FOLDER)
      .replace(/-+$/, '') || 'wa-group';
  for (let n = 1; n < 1000; n++) {
    const suffix = n === 1 ? '' : `-${n}`;
    const folder = base.slice(0, MAX_FOLDER - suffix.length).replace(/-+$/, '') + suffix;
    if (isValidFolder(folder) && !taken(folder)) return folder;
  }
}

/** On a later tick: this may run inside one of the socket's own event handlers. */
function endLater(sock: WASocketLike): void {
  Promise.resolve()
    .then(() => sock.end(undefined))
    .catch((err: unknown) => logger.debug({ err }, 'whatsapp socket end failed'));
}

function errorText(err: unknown, status?: number): string {
  const text = err instanceof Error ? err.message : err ? String(err) : 'connection closed';
  return status === undefined ? text : `${text} (status ${status})`;
}
