import fs from 'node:fs';
import path from 'node:path';

// Free of Baileys (tens of MB), which loads only once linked.
export const isWhatsAppLinked = (authDir: string) => !!linkedAccountJid(authDir);

// `me.id` of a completed link, without the device: `4915…:12@s.whatsapp.net` → `4915…@s…`.
export function linkedAccountJid(authDir: string): string | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(authDir, 'creds.json'), 'utf8')).me.id.replace(/:\d+@/, '@');
  } catch {
    return undefined;
  }
}

// Later: this may run inside the socket's own event handler.
export const endLater = (sock: { end(error: undefined): unknown }) =>
  void Promise.resolve()
    .then(() => sock.end(undefined))
    .catch(() => {});
