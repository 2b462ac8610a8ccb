import fs from 'node:fs';
import type { Writable } from 'node:stream';
import qrcode from 'qrcode-terminal';
import type { WhatsAppState } from '../channels/control.js';
import { linkedAccountJid } from '../channels/whatsapp/link-state.js';
import { WhatsAppLink } from '../channels/whatsapp/linker.js';
import { defaultMakeSocket, type MakeSocket } from '../channels/whatsapp/socket.js';
import { logger } from '../logger.js';
import { askHost, ChatError, startThen } from './chat.js';

// The host's linker, without a channel to start: the CLI links and unlinks the same way the chat page does.
function cliLink(authDir: string, makeSocket: MakeSocket, onLinked = async (_jid: string) => {}) {
  return new WhatsAppLink({
    authDir,
    makeSocket: (o) => {
      if (logger.level === 'silent') o.logger.level = 'silent'; // Baileys' own level outlives the CLI's quiet
      return makeSocket(o);
    },
    onLinked,
    onUnlinked: async () => {},
    knownGroups: () => [],
    isRegistered: () => false,
    folderTaken: () => false,
    registerGroup: async () => ({ ok: false, error: 'not from the CLI' }),
  });
}

/** Links WhatsApp with a QR code in the terminal (or a pairing code for `pairingPhone`); resolves with our jid. */
export async function runWhatsAppAuth(opts: {
  authDir: string;
  pairingPhone?: string | undefined;
  output?: Writable;
  makeSocket?: MakeSocket;
}): Promise<{ jid: string }> {
  const { authDir, pairingPhone: phone, output: out = process.stdout, makeSocket = defaultMakeSocket } = opts;
  const linked = linkedAccountJid(authDir);
  if (linked) {
    out.write(`WhatsApp is already linked as ${linked} (to link again: nanoclaw whatsapp-unlink first).\n`);
    return { jid: linked };
  }
  return new Promise((resolve, reject) => {
    const link = cliLink(
      authDir,
      (o) => {
        const sock = makeSocket(o);
        sock.ev.on('connection.update', ({ qr }) => {
          if (qr && !phone)
            qrcode.generate(qr, { small: true }, (code) =>
              out.write(
                `\nScan this QR code with WhatsApp > Settings > Linked devices > Link a device (a new one comes every 20 s):\n\n${code}\n`,
              ),
            );
        });
        return sock;
      },
      async (jid) => {
        out.write(`\nWhatsApp linked as ${jid}.\n`);
        resolve({ jid });
      },
    );
    let shown: string | undefined;
    link.onChange(() => {
      const { pairingCode, error } = link.state();
      if (error) reject(new Error(error));
      else if (pairingCode && pairingCode !== shown)
        out.write(
          `\nYour pairing code: ${(shown = pairingCode)}\nIn WhatsApp > Settings > Linked devices > Link a device, tap "Link with phone number instead" and enter it.\n`,
        );
    });
    void link.link({ phone });
  });
}

/**
 * Through the running assistant (a second connection on the same link would fight its own), else here
 * with one short connection to log out; the credentials go either way.
 */
export async function runWhatsAppUnlink(opts: {
  home: string;
  port: number;
  authDir: string;
  output: Writable;
  makeSocket?: MakeSocket;
}): Promise<void> {
  const { authDir, output: out, makeSocket = defaultMakeSocket } = opts;
  const hint = startThen('whatsapp-unlink');
  try {
    const before = await askHost<WhatsAppState>(opts, hint, '/api/whatsapp');
    await askHost(opts, hint, '/api/whatsapp/unlink', 'POST');
    return void out.write(
      before.status === 'linked'
        ? `The running assistant logged out of WhatsApp (${before.selfJid}) and deleted the credentials.\n`
        : 'WhatsApp was not linked; the running assistant stopped any linking in progress.\n',
    );
  } catch (err) {
    if (!(err instanceof ChatError && err.notRunning)) throw err;
  }
  if (!fs.existsSync(authDir) || !fs.readdirSync(authDir).length)
    return void out.write('WhatsApp is not linked; nothing to unlink.\n');
  out.write('The assistant is not running, so nanoclaw unlinks WhatsApp itself.\n');
  const jid = linkedAccountJid(authDir);
  let loggedOut = false;
  await cliLink(authDir, (o) => {
    const sock = makeSocket(o);
    const logout = sock.logout.bind(sock);
    sock.logout = (msg) => logout(msg).then(() => void (loggedOut = true));
    return sock;
  }).unlink();
  out.write(
    !jid
      ? `Deleted the unfinished WhatsApp link in ${authDir}.\n`
      : loggedOut
        ? `Logged out of WhatsApp (${jid}) and deleted the credentials in ${authDir}.\n`
        : `Deleted the credentials in ${authDir}, but WhatsApp could not be reached to log out ${jid}: remove this device on your phone (WhatsApp > Settings > Linked devices).\n`,
  );
}
