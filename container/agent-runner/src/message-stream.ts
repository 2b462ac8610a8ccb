import type { SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';

/**
 * A push-based prompt for query(): the SDK iterates it, and follow-up messages pushed while a
 * query runs join that query instead of waiting for a new one. Iteration blocks while the queue
 * is empty and finishes once end() is called and the queue is drained.
 */
export class MessageStream implements AsyncIterable<SDKUserMessage> {
  private readonly queue: SDKUserMessage[] = [];
  private wake: (() => void) | null = null;
  private done = false;
  private pushedCount = 0;

  /** Returns false (and drops nothing silently: the caller keeps the text) once ended. */
  push(text: string): boolean {
    if (this.done) return false;
    this.queue.push({
      type: 'user',
      message: { role: 'user', content: text },
      parent_tool_use_id: null,
    });
    this.pushedCount++;
    this.signal();
    return true;
  }

  end(): void {
    this.done = true;
    this.signal();
  }

  get ended(): boolean {
    return this.done;
  }

  /** How many messages were pushed over the stream's life. */
  get pushed(): number {
    return this.pushedCount;
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SDKUserMessage> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.done) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
