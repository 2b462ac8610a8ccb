import type http from 'node:http';

/** What the local channel pushes to pages and terminals. */
export type LocalEvent =
  | { type: 'message'; data: { chat: string; text: string; timestamp: string; sender: string } }
  | { type: 'typing'; data: { chat: string; isTyping: boolean } };

/** A client that stops reading is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

function frame(event: LocalEvent): string {
  // JSON.stringify escapes newlines, so the data always fits on one `data:` line.
  return `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

/** Server-Sent Events fan-out with a comment heartbeat so proxies and clients see a live stream. */
export class EventHub {
  private readonly clients = new Set<http.ServerResponse>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly heartbeatMs = 15_000) {}

  start(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.writeAll(': heartbeat\n\n'), this.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Stops the heartbeat and ends every open stream. */
  stop(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Turns the response into an event stream; `initial` events bring a new client up to date. */
  subscribe(req: http.IncomingMessage, res: http.ServerResponse, initial: LocalEvent[] = []): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n: connected\n\n');
    for (const event of initial) res.write(frame(event));
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('close', drop);
  }

  publish(event: LocalEvent): void {
    this.writeAll(frame(event));
  }

  private writeAll(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  }
}
