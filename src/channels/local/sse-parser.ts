export interface SseEvent {
  event: string;
  data: string;
}

/** Parses the Server-Sent Events the local channel emits, fed in any chunking. */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  push(chunk: string): SseEvent[] {
    // A lone \r at the very end may be the first half of \r\n: it waits for more.
    const lines = (this.buffer + chunk).split(/\r\n|\r(?!$)|\n/);
    this.buffer = lines.pop() ?? '';
    const events: SseEvent[] = [];
    for (const line of lines) {
      if (line === '') {
        if (this.data.length > 0) events.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
      } else if (!line.startsWith(':')) {
        const [, field, value = ''] = /^([^:]*)(?:: ?(.*))?$/s.exec(line) ?? [];
        if (field === 'event') this.event = value;
        else if (field === 'data') this.data.push(value);
      }
    }
    return events;
  }
}
