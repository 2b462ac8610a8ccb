import fs from 'node:fs';
import path from 'node:path';
import { CLOSE_SENTINEL, inputFileSchema } from './contract/ipc.js';
import { log } from './output.js';

export type InputEvent = { type: 'message'; text: string } | { type: 'close' };

// Names start with the host's millisecond timestamp: oldest first.
const byAge = (a: string, b: string) => parseInt(a, 10) - parseInt(b, 10) || (a < b ? -1 : 1);

// Hands out each event of the inbox's input/ once, in order. The folder is read-only: names read are
// remembered, not deleted. fs.watch misses events on some mounts, so it is also polled. Nothing after `_close`.
export class InputWatcher {
  private readonly buffer: InputEvent[] = [];
  private readonly consumed = new Set<string>();
  private watcher?: fs.FSWatcher;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** The one consumer, called whenever events are buffered. */
  onEvents?: () => void;

  constructor(
    private readonly dir: string,
    pollMs = 500,
  ) {
    const polling = (err: Error) => log('input watch unavailable, polling only', { error: err.message });
    try {
      this.watcher = fs.watch(dir, () => this.scan()).on('error', polling);
    } catch (err) {
      polling(err as Error);
    }
    this.timer = setInterval(() => this.scan(), pollMs);
    this.scan();
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.timer);
    this.onEvents = undefined;
  }

  take = (): InputEvent | undefined => this.buffer.shift();

  next(): Promise<InputEvent> {
    return new Promise((resolve) => {
      this.onEvents = () => {
        const event = this.take();
        if (!event) return;
        this.onEvents = undefined;
        resolve(event);
      };
      this.onEvents();
    });
  }

  private scan(): void {
    let names: string[];
    try {
      if (this.closed) return;
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    const found: InputEvent[] = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !this.consumed.has(n)).sort(byAge)) {
      try {
        const raw = fs.readFileSync(path.join(this.dir, name), 'utf8');
        this.consumed.add(name);
        found.push({ type: 'message', text: inputFileSchema.parse(JSON.parse(raw)).text });
      } catch {
        // Gone (the host cleared the folder) or not a message.
        if (this.consumed.has(name)) log('input file dropped: not a message', { name });
      }
    }
    if (names.includes(CLOSE_SENTINEL)) {
      found.push({ type: 'close' });
      this.closed = true;
    }
    if (!found.length) return;
    this.buffer.push(...found);
    this.onEvents?.();
  }
}
