import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';

/** A message that fails this often is dropped, so one bad message cannot block all later ones. */
const MAX_FAILURES = 5;
const MAX_QUEUED = 1000;

/**
 * Everything goes through the queue, so no message overtakes older ones. A failed send stops the
 * flush; it and the rest wait for the next (after a reconnect).
 */
export class Outbox {
  private readonly queue: Array<{ jid: string; text: string; failures: number }> = [];
  private flushing: Promise<boolean> | undefined;

  constructor(private readonly send: (jid: string, text: string) => Promise<void>) {}

  get size(): number {
    return this.queue.length;
  }

  enqueue(jid: string, text: string): void {
    if (this.queue.length >= MAX_QUEUED) {
      const dropped = this.queue.shift();
      logger.warn(
        { jid: dropped?.jid, maxQueued: MAX_QUEUED },
        'whatsapp outbox full; oldest message dropped',
      );
    }
    this.queue.push({ jid, text, failures: 0 });
  }

  /** One drain at a time, while `canSend()` holds. Never rejects. */
  async flush(canSend: () => boolean): Promise<void> {
    while (this.queue.length > 0 && canSend()) {
      // `flushing` is cleared before its promise settles, so a message queued while an earlier
      // drain was finishing is picked up by the next turn of this loop, not left behind.
      this.flushing ??= this.drain(canSend).finally(() => (this.flushing = undefined));
      if (!(await this.flushing)) return;
    }
  }

  /** False when a send failed. */
  private async drain(canSend: () => boolean): Promise<boolean> {
    for (let next = this.queue[0]; next && canSend(); next = this.queue[0]) {
      try {
        await this.send(next.jid, next.text);
      } catch (err) {
        const permanent = err instanceof ChannelSendError && err.kind === 'permanent';
        if (++next.failures < MAX_FAILURES && !permanent)
          logger.warn({ err, jid: next.jid }, 'whatsapp send failed; kept queued');
        else {
          this.queue.shift();
          logger.error(
            { err, jid: next.jid, failures: next.failures },
            'whatsapp send failed for good; dropped',
          );
        }
        if (!permanent) return false;
        continue;
      }
      this.queue.shift();
    }
    return true;
  }
}
