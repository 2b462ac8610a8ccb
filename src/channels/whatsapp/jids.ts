import { isLidUser, isPnUser, jidNormalizedUser } from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';
import type { WASocketLike } from './socket.js';

/**
 * WhatsApp may address people by LID (`<n>@lid`); groups are registered and senders known by phone
 * jid, so a LID is translated when the mapping is known, else kept.
 */
export class JidTranslator {
  private readonly lidToPn = new Map<string, string>();

  constructor(private readonly sock: () => WASocketLike | undefined) {}

  remember(lid: string | undefined, pn: string | null | undefined): void {
    if (isLidUser(lid) && pn && isPnUser(pn)) this.lidToPn.set(jidNormalizedUser(lid), jidNormalizedUser(pn));
  }

  async toPhoneJid(jid: string, alternate?: string | null): Promise<string> {
    if (!isLidUser(jid)) return jid;
    const lid = jidNormalizedUser(jid);
    this.remember(lid, alternate);
    if (!this.lidToPn.has(lid)) {
      try {
        this.remember(lid, await this.sock()?.signalRepository?.lidMapping?.getPNForLID(jid));
      } catch (err) {
        logger.debug({ err, jid }, 'whatsapp LID lookup failed');
      }
    }
    return this.lidToPn.get(lid) ?? jid;
  }
}
