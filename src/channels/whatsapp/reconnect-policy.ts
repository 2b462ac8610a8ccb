import { DisconnectReason } from '@whiskeysockets/baileys';

/** What to do when WhatsApp closes the connection. */
export type CloseDecision =
  | { action: 'reconnect'; immediate: boolean; reason: string }
  | { action: 'stop'; reason: string; message: string };

const RELINK = 'run `nanoclaw whatsapp-auth` to link again';

/**
 * Decides per close reason (Baileys' DisconnectReason, the Boom status code). Reasons that a new
 * connection cannot fix stop the channel, so the host never spins in a reconnect loop against them.
 */
export function decideOnClose(statusCode: number | undefined): CloseDecision {
  switch (statusCode) {
    case DisconnectReason.loggedOut:
      return { action: 'stop', reason: 'loggedOut', message: `WhatsApp logged out; ${RELINK}` };
    case DisconnectReason.connectionReplaced:
      // Another client opened a session with these credentials; reconnecting would kick it out
      // and be kicked out in turn, forever.
      return {
        action: 'stop',
        reason: 'connectionReplaced',
        message: 'WhatsApp session was replaced by another connection using the same link; not reconnecting',
      };
    case DisconnectReason.forbidden:
      return {
        action: 'stop',
        reason: 'forbidden',
        message: `WhatsApp refused this account (403); ${RELINK}`,
      };
    case DisconnectReason.multideviceMismatch:
      return {
        action: 'stop',
        reason: 'multideviceMismatch',
        message: `WhatsApp multi-device mismatch; ${RELINK}`,
      };
    case DisconnectReason.restartRequired:
      // Normal right after linking: the server asks for a fresh connection at once.
      return { action: 'reconnect', immediate: true, reason: 'restartRequired' };
    case DisconnectReason.connectionClosed:
      return { action: 'reconnect', immediate: false, reason: 'connectionClosed' };
    case DisconnectReason.connectionLost: // also timedOut (same code)
      return { action: 'reconnect', immediate: false, reason: 'connectionLost' };
    case DisconnectReason.badSession:
      return { action: 'reconnect', immediate: false, reason: 'badSession' };
    case DisconnectReason.unavailableService:
      return { action: 'reconnect', immediate: false, reason: 'unavailableService' };
    case undefined: // closed without a reason: treat like a lost connection
    default:
      return { action: 'reconnect', immediate: false, reason: `status ${statusCode ?? 'unknown'}` };
  }
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000 };

/** Delay before reconnect attempt `attempt` (0-based): initial, doubling, capped. */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 30));
}
