import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

// Free of Baileys (tens of MB), loaded only when linked. Every completed link writes `me.id`;
// `registered` is set by the pairing-code flow alone.
const credsSchema = z.object({ me: z.object({ id: z.string().min(1) }) });

export const isWhatsAppLinked = (authDir: string): boolean => linkedAccountJid(authDir) !== undefined;

/** `4915…:12@s.whatsapp.net` in creds.json → `4915…@s.whatsapp.net`. */
export function linkedAccountJid(authDir: string): string | undefined {
  let creds: unknown;
  try {
    creds = JSON.parse(fs.readFileSync(path.join(authDir, 'creds.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const [user, server] = credsSchema.safeParse(creds).data?.me.id.split('@') ?? [];
  const number = user?.split(':')[0];
  return number && server ? `${number}@${server === 'c.us' ? 's.whatsapp.net' : server}` : undefined;
}
