export type SseEvent = { event: string; data: string };

export class SseParser {
  private buffer = '';

  push(chunk: string): SseEvent[] {
    // A final lone \r may be half of \r\n.
    const blocks = (this.buffer + chunk).replace(/\r\n|\r(?!$)/g, '\n').split('\n\n');
    this.buffer = blocks.pop()!;
    return blocks.flatMap((block) => {
      let event = 'message';
      const data = [];
      for (const [, field, value = ''] of block.matchAll(/^([^:\n]*)(?:: ?(.*))?$/gm))
        if (field === 'event') event = value || 'message';
        else if (field === 'data') data.push(value);
      return data.length ? [{ event, data: data.join('\n') }] : [];
    });
  }
}
