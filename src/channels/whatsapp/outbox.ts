import { logger } from '../../logger.js';

interface Outgoing {
  jid: string;
  text: string;
  failures: number;
}

/** A message that fails this often is dropped, so one bad message cannot block all later ones. */
const MAX_FAILURES = 5;

/**
 * Outbound messages in the order they were asked for. Everything goes through the queue, so a
 * message sent while older ones are still waiting never overtakes them. A failed send stops the
 * flush and keeps that message and the rest for the next flush (after a reconnect).
 */
export class Outbox {
  private readonly queue: Outgoing[] = [];
  private flushing: Promise<boolean> | undefined;

  constructor(
    private readonly send: (jid: string, text: string) => Promise<void>,
    private readonly maxQueued = 1000,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  enqueue(jid: string, text: string): void {
    if (this.queue.length >= this.maxQueued) {
      const dropped = this.queue.shift();
      logger.warn(
        { jid: dropped?.jid, maxQueued: this.maxQueued },
        'whatsapp outbox full; oldest message dropped',
      );
    }
    this.queue.push({ jid, text, failures: 0 });
  }

  /** Sends queued messages in order while `canSend()` holds; one drain runs at a time. */
  async flush(canSend: () => boolean): Promise<void> {
    while (this.queue.length > 0 && canSend()) {
      // `flushing` is cleared before its promise settles, so a message queued while an earlier
      // drain was finishing is picked up by the next turn of this loop, not left behind.
      this.flushing ??= this.drain(canSend).finally(() => {
        this.flushing = undefined;
      });
      if (!(await this.flushing)) return;
    }
  }

  /** False when a send failed (the rest waits for the next flush). */
  private async drain(canSend: () => boolean): Promise<boolean> {
    while (this.queue.length > 0 && canSend()) {
      const next = this.queue[0] as Outgoing;
      try {
        await this.send(next.jid, next.text);
      } catch (err) {
        next.failures += 1;
        if (next.failures >= MAX_FAILURES) {
          logger.error(
            { err, jid: next.jid, failures: next.failures },
            'whatsapp send kept failing; dropped',
          );
          this.queue.shift();
        } else {
          logger.warn({ err, jid: next.jid, queued: this.queue.length }, 'whatsapp send failed; kept queued');
        }
        return false;
      }
      this.queue.shift();
    }
    return true;
  }
}
