export type SseEvent = { event: string; data: string };

/** Server-Sent Events, fed in any chunking. */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  push(chunk: string): SseEvent[] {
    // A final lone \r may be half of \r\n.
    const lines = (this.buffer + chunk).split(/\r\n|\r(?!$)|\n/);
    this.buffer = lines.pop()!;
    const events: SseEvent[] = [];
    for (const line of lines) {
      if (line) {
        const [, field, value = ''] = /^([^:]*)(?:: ?(.*))?$/s.exec(line)!;
        if (field === 'event') this.event = value;
        else if (field === 'data') this.data.push(value);
        continue;
      }
      if (this.data.length) events.push({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
    }
    return events;
  }
}
