import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../logger.js';

// Free of Baileys (tens of MB), which loads only once linked.
export const isWhatsAppLinked = (authDir: string) => linkedAccountJid(authDir) !== undefined;

// Every completed link writes `me.id`: `4915…:12@s.whatsapp.net` → `4915…@s.whatsapp.net`.
export function linkedAccountJid(authDir: string): string | undefined {
  try {
    const { me } = JSON.parse(fs.readFileSync(path.join(authDir, 'creds.json'), 'utf8'));
    const [, user, server] = /^([^:@]+)(?::\d+)?@(.+)$/.exec(me.id) ?? [];
    return user && `${user}@${server === 'c.us' ? 's.whatsapp.net' : server}`;
  } catch {
    return undefined;
  }
}

// On a later tick: this may run inside the socket's own event handler.
export const endLater = (sock: { end(error: undefined): unknown }) =>
  void Promise.resolve()
    .then(() => sock.end(undefined))
    .catch((err: unknown) => logger.debug({ err }, 'whatsapp socket end failed'));
