import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { DisconnectReason, jidNormalizedUser } from '@whiskeysockets/baileys';
import qrcode from 'qrcode-terminal';
import { backoffDelay } from '../channels/whatsapp/reconnect-policy.js';
import {
  baileysLogger,
  defaultMakeSocket,
  disconnectStatusCode,
  loadAuthState,
  type MakeSocket,
  type WASocketLike,
} from '../channels/whatsapp/socket.js';

export interface WhatsAppAuthOptions {
  /** $NANOCLAW_HOME/store/auth */
  authDir: string;
  /** Link with a pairing code for this number (country code first) instead of a QR code. */
  pairingPhone?: string;
  output?: Writable;
  makeSocket?: MakeSocket;
}

/** Connection drops while linking (not the end of the QR codes) are retried this often. */
const MAX_RETRIES = 5;

/** Normalises `+49 151 1234-5678` to `4915112345678`; undefined when it cannot be a phone number. */
export function pairingDigits(phone: string): string | undefined {
  const digits = phone.replace(/[\s+().-]/g, '');
  return /^\d{7,15}$/.test(digits) ? digits : undefined;
}

/**
 * `nanoclaw whatsapp-auth`: links this installation to WhatsApp as a linked device. Shows a QR code
 * (or a pairing code), saves the credentials under authDir and resolves with our own jid once the
 * connection opens. Rejects with a message fit for the person at the terminal.
 */
export async function runWhatsAppAuth(opts: WhatsAppAuthOptions): Promise<{ jid: string }> {
  const out = opts.output ?? process.stdout;
  const phone = opts.pairingPhone === undefined ? undefined : pairingDigits(opts.pairingPhone);
  if (opts.pairingPhone !== undefined && !phone) {
    throw new Error('the pairing phone must be the full number with country code, e.g. 4915112345678');
  }
  const log = baileysLogger();
  const makeSocket = opts.makeSocket ?? defaultMakeSocket;
  let auth = await loadAuthState(opts.authDir, log);

  return new Promise<{ jid: string }>((resolve, reject) => {
    let current: WASocketLike | undefined;
    let finished = false;
    let retries = 0;
    let relinked = false;
    let pairingRequested = false;
    let showedCode = false;
    const pendingSaves = new Set<Promise<void>>();

    const finish = (sock: WASocketLike, outcome: { jid: string } | Error) => {
      if (finished) return;
      finished = true;
      current = undefined;
      void Promise.allSettled([...pendingSaves]).then(() => {
        Promise.resolve()
          .then(() => sock.end(undefined))
          .catch(() => undefined);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      });
    };

    const start = () => {
      let sock: WASocketLike;
      try {
        sock = makeSocket({ auth: auth.state, logger: log });
      } catch (err) {
        finished = true;
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      current = sock;
      sock.ev.on('creds.update', () => {
        const save = auth.saveCreds().catch((err: unknown) => {
          out.write(`Could not save the WhatsApp credentials: ${(err as Error).message}\n`);
        });
        pendingSaves.add(save);
        void save.finally(() => pendingSaves.delete(save));
      });
      sock.ev.on('connection.update', (update) => {
        if (sock !== current || finished) return;
        if (update.qr) {
          showedCode = true;
          if (phone) requestPairingCode(sock, phone);
          else showQr(update.qr);
        }
        if (update.connection === 'open') {
          const jid = sock.user?.id ? jidNormalizedUser(sock.user.id) : '';
          out.write(
            showedCode ? `\nWhatsApp linked as ${jid}.\n` : `WhatsApp is already linked as ${jid}.\n`,
          );
          finish(sock, { jid });
        } else if (update.connection === 'close') {
          onClose(sock, disconnectStatusCode(update.lastDisconnect?.error));
        }
      });
    };

    const requestPairingCode = (sock: WASocketLike, digits: string) => {
      // Asked on the first QR event: only then is the connection ready to take the request.
      if (pairingRequested) return;
      pairingRequested = true;
      sock.requestPairingCode(digits).then(
        (code) => {
          const shown = code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
          out.write(
            `\nYour pairing code: ${shown}\n\n` +
              'On your phone open WhatsApp > Settings > Linked devices > Link a device,\n' +
              `tap "Link with phone number instead" and enter the code.\n`,
          );
        },
        (err: unknown) => finish(sock, new Error(`Could not get a pairing code: ${(err as Error).message}`)),
      );
    };

    const showQr = (qr: string) => {
      qrcode.generate(qr, { small: true }, (rendered) => {
        out.write(
          '\nScan this QR code with WhatsApp on your phone\n' +
            '(Settings > Linked devices > Link a device). A new code appears every 20 seconds or so.\n\n' +
            `${rendered}\n`,
        );
      });
    };

    const onClose = (sock: WASocketLike, statusCode: number | undefined) => {
      const linked = Boolean(auth.state.creds.me?.id);
      if (statusCode === DisconnectReason.restartRequired) {
        // Expected right after the phone accepts the link: WhatsApp wants a fresh connection.
        out.write('Link accepted; reconnecting...\n');
        start();
      } else if (statusCode === DisconnectReason.loggedOut && !relinked) {
        // The stored link was removed on the phone: those credentials are dead, start a new link.
        relinked = true;
        current = undefined;
        out.write('The previous WhatsApp link was logged out; starting a new link.\n');
        void clearAuthDir(opts.authDir)
          .then(async () => {
            auth = await loadAuthState(opts.authDir, log);
            start();
          })
          .catch((err: unknown) => finish(sock, err instanceof Error ? err : new Error(String(err))));
      } else if (statusCode === DisconnectReason.timedOut && !linked) {
        const what = phone ? 'pairing code' : 'QR code';
        finish(
          sock,
          new Error(`The ${what} expired before the link was made; run \`nanoclaw whatsapp-auth\` again`),
        );
      } else if (isTransient(statusCode) && retries < MAX_RETRIES) {
        current = undefined;
        setTimeout(start, backoffDelay(retries++));
      } else {
        finish(
          sock,
          new Error(`WhatsApp closed the connection while linking (status ${statusCode ?? 'unknown'})`),
        );
      }
    };

    start();
  });
}

function isTransient(statusCode: number | undefined): boolean {
  return (
    statusCode === undefined ||
    statusCode === DisconnectReason.connectionClosed ||
    statusCode === DisconnectReason.connectionLost ||
    statusCode === DisconnectReason.unavailableService ||
    statusCode === DisconnectReason.badSession
  );
}

/** Removes the files of a dead link, keeping the directory itself. */
async function clearAuthDir(authDir: string): Promise<void> {
  for (const entry of await fs.promises.readdir(authDir)) {
    await fs.promises.rm(path.join(authDir, entry), { recursive: true, force: true });
  }
}
