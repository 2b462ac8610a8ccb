import type http from 'node:http';

export type LocalEvent =
  | { type: 'message'; data: { chat: string; text: string; timestamp: string; sender: string } }
  | { type: 'typing'; data: { chat: string; isTyping: boolean } };

/** A client that stops reading is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

// JSON.stringify escapes newlines, so the data always fits on one `data:` line.
const frame = (event: LocalEvent) => `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;

/** SSE fan-out; the heartbeat shows proxies and clients a live stream. */
export class EventHub {
  private readonly clients = new Set<http.ServerResponse>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly heartbeatMs = 15_000) {}

  start(): void {
    this.heartbeat ??= setInterval(() => this.writeAll(': heartbeat\n\n'), this.heartbeatMs).unref();
  }

  stop(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  subscribe(res: http.ServerResponse, initial: LocalEvent[]): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 2000\n: connected\n\n${initial.map(frame).join('')}`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
  }

  publish(event: LocalEvent): void {
    this.writeAll(frame(event));
  }

  private writeAll(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength <= MAX_BUFFERED_BYTES) res.write(chunk);
      else {
        this.clients.delete(res);
        res.destroy();
      }
    }
  }
}
