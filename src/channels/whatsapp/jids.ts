import { isLidUser, isPnUser, jidNormalizedUser } from '@whiskeysockets/baileys';
import { logger } from '../../logger.js';

export interface LidLookup {
  getPNForLID(lid: string): Promise<string | null>;
}

/**
 * WhatsApp increasingly addresses people by LID (`<n>@lid`) instead of their phone jid. Groups are
 * registered, and senders recognised, by phone jid, so LIDs are translated whenever the mapping is
 * known: from the message key's alternate jid, from our own identity, from mappings Baileys has
 * announced, or from Baileys' LID store. An unknown LID is kept as it is.
 */
export class JidTranslator {
  private readonly lidToPn = new Map<string, string>();

  constructor(private readonly lookup: () => LidLookup | undefined) {}

  /** Learns our own LID ↔ phone pair (self-chat arrives under our LID). */
  setOwnIdentity(user: { id: string; lid?: string } | undefined): void {
    if (user?.lid) this.remember(user.lid, user.id);
  }

  remember(lid: string, pn: string): void {
    if (!isLidUser(lid) || !isPnUser(pn)) return;
    this.lidToPn.set(jidNormalizedUser(lid), jidNormalizedUser(pn));
  }

  /** The phone jid for `jid` when it is a LID with a known mapping; otherwise `jid` unchanged. */
  async toPhoneJid(jid: string, alternate?: string | null): Promise<string> {
    if (!isLidUser(jid)) return jid;
    const lid = jidNormalizedUser(jid);
    if (alternate && isPnUser(alternate)) {
      this.remember(lid, alternate);
      return jidNormalizedUser(alternate);
    }
    const cached = this.lidToPn.get(lid);
    if (cached) return cached;
    try {
      const pn = await this.lookup()?.getPNForLID(jid);
      if (pn && isPnUser(pn)) {
        this.remember(lid, pn);
        return jidNormalizedUser(pn);
      }
    } catch (err) {
      logger.debug({ err, jid }, 'whatsapp LID lookup failed');
    }
    return jid;
  }
}
