import { DisconnectReason } from '@whiskeysockets/baileys';

const RELINK = 'run `nanoclaw whatsapp-auth` to link again';

/** Close reasons a new connection cannot fix: stop rather than loop. */
const STOP: Partial<Record<number, string>> = {
  [DisconnectReason.loggedOut]: `WhatsApp logged out; ${RELINK}`,
  // Another client uses this link: each would kick the other out, forever.
  [DisconnectReason.connectionReplaced]:
    'WhatsApp session was replaced by another connection using the same link; not reconnecting',
  [DisconnectReason.forbidden]: `WhatsApp refused this account (403); ${RELINK}`,
  [DisconnectReason.multideviceMismatch]: `WhatsApp multi-device mismatch; ${RELINK}`,
};

export const stopReason = (statusCode: number | undefined) =>
  statusCode === undefined ? undefined : STOP[statusCode];

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000 };

export const backoffDelay = (attempt: number, { initialMs, maxMs } = DEFAULT_BACKOFF) =>
  Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
