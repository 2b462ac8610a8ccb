import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * Whether WhatsApp is linked, read straight from creds.json. Kept free of Baileys so the host can
 * decide to load the WhatsApp library (tens of MB) only when there is an account to connect.
 */

// `registered` is only set by the pairing-code flow; a QR link leaves it false. What every
// completed link writes is the account (`me.id`), and that is what Baileys logs in with.
const linkedCredsSchema = z.object({ me: z.object({ id: z.string().min(1) }) });

/** True when creds.json exists and holds a completed link (an account to log in as). */
export function isWhatsAppLinked(authDir: string): boolean {
  return linkedAccountJid(authDir) !== undefined;
}

/**
 * The phone jid of the linked account (`<number>@s.whatsapp.net`), read from creds.json: the
 * self-chat, which the CLI can offer to register as main without a running host.
 */
export function linkedAccountJid(authDir: string): string | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(path.join(authDir, 'creds.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = linkedCredsSchema.safeParse(JSON.parse(raw));
    return parsed.success ? normalizeUserJid(parsed.data.me.id) : undefined;
  } catch {
    return undefined;
  }
}

/** `4915112345678:12@s.whatsapp.net` (a device of the account) → `4915112345678@s.whatsapp.net`. */
function normalizeUserJid(id: string): string | undefined {
  const [userPart, server] = id.split('@');
  const user = userPart?.split(':')[0];
  if (!user || !server) return undefined;
  return `${user}@${server === 'c.us' ? 's.whatsapp.net' : server}`;
}
