import type { Writable } from 'node:stream';
import qrcode from 'qrcode-terminal';
import { linkedAccountJid } from '../channels/whatsapp/link-state.js';
import { WhatsAppLink } from '../channels/whatsapp/linker.js';
import { defaultMakeSocket } from '../channels/whatsapp/socket.js';
import { logger } from '../logger.js';

export async function runWhatsAppAuth(
  authDir: string,
  phone?: string,
  out: Writable = process.stdout,
  makeSocket = defaultMakeSocket,
): Promise<{ jid: string }> {
  const linked = linkedAccountJid(authDir);
  if (linked) {
    out.write(`WhatsApp is already linked as ${linked}; to link again: nanoclaw whatsapp-unlink\n`);
    return { jid: linked };
  }
  const how = '\nIn WhatsApp > Settings > Linked devices > Link a device,';
  const no = () => false;
  return new Promise((resolve, reject) => {
    const link = new WhatsAppLink({
      authDir,
      makeSocket: (o) => {
        if (logger.level === 'silent') o.logger.level = 'silent'; // Baileys' own level outlives the CLI's quiet
        const sock = makeSocket(o);
        sock.ev.on('connection.update', ({ qr }) => {
          if (qr && !phone)
            qrcode.generate(qr, { small: true }, (code) =>
              out.write(`${how} scan this QR code:\n\n${code}\n`),
            );
        });
        return sock;
      },
      onLinked: async (jid) => {
        out.write(
          `\nLinked. Make it main: nanoclaw groups register --jid ${jid} --name Me --folder self --main\n`,
        );
        resolve({ jid });
      },
      onUnlinked: async () => {},
      knownGroups: () => [],
      isRegistered: no,
      folderTaken: no,
      registerGroup: async () => ({ ok: false, error: '' }),
    });
    let shown: string | undefined;
    link.onChange(() => {
      const { pairingCode, error } = link.state();
      if (error) reject(new Error(error));
      else if (pairingCode && pairingCode !== shown)
        out.write(`${how} tap "Link with phone number instead" and enter: ${(shown = pairingCode)}\n`);
    });
    void link.link({ phone });
  });
}
