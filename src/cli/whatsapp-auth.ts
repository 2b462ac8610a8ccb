import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { DisconnectReason, jidNormalizedUser } from '@whiskeysockets/baileys';
import qrcode from 'qrcode-terminal';
import { logger } from '../logger.js';
import type { WhatsAppState } from '../channels/control.js';
import { linkedAccountJid } from '../channels/whatsapp/link-state.js';
import { WhatsAppLink } from '../channels/whatsapp/linker.js';
import { backoffDelay } from '../channels/whatsapp/reconnect-policy.js';
import {
  baileysLogger,
  defaultMakeSocket,
  disconnectStatusCode,
  loadAuthState,
  type MakeSocket,
  type WASocketLike,
} from '../channels/whatsapp/socket.js';
import { askHost, ChatError, startThen } from './chat.js';

/** Connection drops while linking (not the end of the QR codes) are retried this often. */
const MAX_RETRIES = 5;
const { restartRequired, loggedOut, timedOut } = DisconnectReason;
const { connectionClosed, connectionLost, unavailableService, badSession } = DisconnectReason;
// connectionLost is timedOut (408): with no code shown yet, a connection attempt that timed out.
const TRANSIENT = new Set([undefined, connectionClosed, connectionLost, unavailableService, badSession]);
const AGAIN = 'run `nanoclaw whatsapp-auth` again';
const toError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

/**
 * Links this installation as a WhatsApp device with a QR code (or a pairing code for `pairingPhone`),
 * saves the credentials and resolves with our own jid. Rejects with a message for the person at the terminal.
 */
export async function runWhatsAppAuth(opts: {
  authDir: string;
  pairingPhone?: string | undefined;
  output?: Writable;
  makeSocket?: MakeSocket;
}): Promise<{ jid: string }> {
  const { output: out = process.stdout, makeSocket = defaultMakeSocket } = opts;
  const phone = opts.pairingPhone?.replace(/[\s+().-]/g, '');
  if (phone !== undefined && !/^\d{7,15}$/.test(phone))
    throw new Error('the pairing phone must be the full number with country code, e.g. 4915112345678');
  const log = baileysLogger();
  if (logger.level === 'silent') log.level = 'silent'; // its own level would outlive the CLI's quiet
  let auth = await loadAuthState(opts.authDir, log);

  return new Promise((resolve, reject) => {
    let current: WASocketLike | undefined;
    let finished = false;
    let retries = 0;
    let relinked = false;
    let pairingRequested = false;
    let showedCode = false;
    let saved: Promise<unknown> = Promise.resolve();

    const finish = (sock: WASocketLike, outcome: { jid: string } | Error) => {
      if (finished) return;
      finished = true;
      current = undefined;
      // The credentials must be on disk before the caller hears "linked".
      void saved.then(() => {
        void Promise.resolve(sock)
          .then((s) => s.end(undefined))
          .catch(() => {});
        return outcome instanceof Error ? reject(outcome) : resolve(outcome);
      });
    };

    const start = () => {
      let sock: WASocketLike;
      try {
        sock = current = makeSocket({ auth: auth.state, logger: log });
      } catch (err) {
        finished = true;
        return reject(toError(err));
      }
      sock.ev.on('creds.update', () => {
        saved = saved
          .then(() => auth.saveCreds())
          .catch((err: unknown) =>
            out.write(`Could not save the WhatsApp credentials: ${toError(err).message}\n`),
          );
      });
      sock.ev.on('connection.update', ({ qr, connection, lastDisconnect }) => {
        if (sock !== current || finished) return;
        if (qr) {
          showedCode = true;
          if (phone) requestPairingCode(sock, phone);
          else
            qrcode.generate(qr, { small: true }, (rendered) =>
              out.write(
                '\nScan this QR code with WhatsApp on your phone\n(Settings > Linked devices > Link a device). ' +
                  `A new code appears every 20 seconds or so.\n\n${rendered}\n`,
              ),
            );
        }
        if (connection === 'open') {
          const jid = sock.user?.id ? jidNormalizedUser(sock.user.id) : '';
          out.write(
            showedCode ? `\nWhatsApp linked as ${jid}.\n` : `WhatsApp is already linked as ${jid}.\n`,
          );
          finish(sock, { jid });
        } else if (connection === 'close') {
          onClose(sock, disconnectStatusCode(lastDisconnect?.error));
        }
      });
    };

    const requestPairingCode = (sock: WASocketLike, digits: string) => {
      // Asked on the first QR event: only then is the connection ready to take the request.
      if (pairingRequested) return;
      pairingRequested = true;
      sock.requestPairingCode(digits).then(
        (code) =>
          out.write(
            `\nYour pairing code: ${code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code}\n\n` +
              'On your phone open WhatsApp > Settings > Linked devices > Link a device,\n' +
              'tap "Link with phone number instead" and enter the code.\n',
          ),
        (err: unknown) => finish(sock, new Error(`Could not get a pairing code: ${toError(err).message}`)),
      );
    };

    const onClose = (sock: WASocketLike, status: number | undefined) => {
      if (status === restartRequired) {
        // Expected right after the phone accepts the link: WhatsApp wants a fresh connection.
        out.write('Link accepted; reconnecting...\n');
        start();
      } else if (status === loggedOut && !relinked) {
        // The stored link was removed on the phone: its credentials are dead, start a new link.
        relinked = true;
        current = undefined;
        out.write('The previous WhatsApp link was logged out; starting a new link.\n');
        void (async () => {
          for (const entry of await fs.promises.readdir(opts.authDir))
            await fs.promises.rm(path.join(opts.authDir, entry), { recursive: true, force: true });
          auth = await loadAuthState(opts.authDir, log);
          start();
        })().catch((err: unknown) => finish(sock, toError(err)));
      } else if (status === timedOut && showedCode && !auth.state.creds.me?.id) {
        const code = phone ? 'pairing code' : 'QR code';
        finish(sock, new Error(`The ${code} expired before the link was made; ${AGAIN}`));
      } else if (TRANSIENT.has(status) && retries < MAX_RETRIES) {
        current = undefined;
        out.write(`The connection to WhatsApp dropped (status ${status ?? 'unknown'}); retrying...\n`);
        setTimeout(start, backoffDelay(retries++));
      } else {
        // No code shown yet (it comes with the first connection): WhatsApp was never reached.
        const why = showedCode
          ? 'WhatsApp closed the connection while linking'
          : `Cannot reach WhatsApp; check the internet connection, then ${AGAIN}`;
        finish(sock, new Error(`${why} (status ${status ?? 'unknown'})`));
      }
    };

    start();
  });
}

/**
 * `nanoclaw whatsapp-unlink`: through the running assistant (a second connection on the same link would
 * fight its own), else here, with one short connection to log out; the credentials go either way.
 */
export async function runWhatsAppUnlink(opts: {
  home: string;
  port: number;
  authDir: string;
  output: Writable;
  makeSocket?: MakeSocket;
}): Promise<void> {
  const { authDir, output: out } = opts;
  try {
    const before = await askHost<WhatsAppState>(opts, startThen('whatsapp-unlink'), '/api/whatsapp');
    await askHost(opts, startThen('whatsapp-unlink'), '/api/whatsapp/unlink', 'POST');
    return void out.write(
      before.status === 'linked'
        ? `The running assistant logged out of WhatsApp (${before.selfJid}) and deleted the credentials.\n`
        : 'WhatsApp was not linked; the running assistant stopped any linking in progress.\n',
    );
  } catch (err) {
    if (!(err instanceof ChatError && err.notRunning)) throw err;
  }
  const jid = linkedAccountJid(authDir);
  const files = fs.existsSync(authDir) && fs.readdirSync(authDir).length > 0;
  if (!files) return void out.write('WhatsApp is not linked; nothing to unlink.\n');
  out.write('The assistant is not running, so nanoclaw unlinks WhatsApp itself.\n');
  let loggedOut = false;
  const make = opts.makeSocket ?? defaultMakeSocket;
  const makeSocket: MakeSocket = (o) => {
    if (logger.level === 'silent') o.logger.level = 'silent';
    const sock = make(o);
    const logout = sock.logout.bind(sock);
    sock.logout = (msg) => logout(msg).then(() => void (loggedOut = true));
    return sock;
  };
  const none = async () => {};
  await new WhatsAppLink({
    authDir,
    makeSocket,
    onLinked: none,
    onUnlinked: none,
    knownGroups: () => [],
    isRegistered: () => false,
    folderTaken: () => false,
    registerGroup: async () => ({ ok: false, error: 'not while unlinking' }),
  }).unlink();
  out.write(
    !jid
      ? `Deleted the unfinished WhatsApp link in ${authDir}.\n`
      : loggedOut
        ? `Logged out of WhatsApp (${jid}) and deleted the credentials in ${authDir}.\n`
        : `Deleted the credentials in ${authDir}, but WhatsApp could not be reached to log out ${jid}: ` +
          'remove this device on your phone (WhatsApp > Settings > Linked devices).\n',
  );
}
