import fs from 'node:fs';
import path from 'node:path';
import { CLOSE_SENTINEL, inputFileSchema } from './contract/ipc.js';
import { log } from './output.js';

export type InputEvent = { type: 'message'; text: string } | { type: 'close' };

/** Oldest first: names start with the host's millisecond timestamp. */
const byAge = (a: string, b: string) => parseInt(a, 10) - parseInt(b, 10) || (a < b ? -1 : a > b ? 1 : 0);

/**
 * Watches the inbox's input/ (fs.watch plus a poll: fs.watch misses events on some mounts) and
 * hands each event out once, in order. The folder is read-only: names read are remembered instead
 * of deleted (the host clears it before each run). Nothing is read after `_close`.
 */
export class InputWatcher {
  private readonly buffer: InputEvent[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly consumed = new Set<string>();
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly pollMs = 500,
  ) {}

  start(): void {
    try {
      this.watcher = fs.watch(this.dir, () => this.scan());
      this.watcher.on('error', (err) => log('input watch failed, polling only', { error: err.message }));
    } catch (err) {
      log('input watch unavailable, polling only', { error: (err as Error).message });
    }
    this.timer = setInterval(() => this.scan(), this.pollMs);
    this.scan();
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    this.watcher = this.timer = null;
    this.listeners.clear();
  }

  /** Called whenever events are buffered; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (this.buffer.length > 0) listener();
    return () => this.listeners.delete(listener);
  }

  take(): InputEvent | undefined {
    return this.buffer.shift();
  }

  next(): Promise<InputEvent> {
    const ready = this.take();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const unsubscribe = this.subscribe(() => {
        const event = this.take();
        if (!event) return;
        unsubscribe();
        resolve(event);
      });
    });
  }

  private scan(): void {
    if (this.closed) return;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    const found: InputEvent[] = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !this.consumed.has(n)).sort(byAge)) {
      let raw: string;
      try {
        raw = fs.readFileSync(path.join(this.dir, name), 'utf8');
      } catch {
        continue; // gone: the host cleared the folder
      }
      this.consumed.add(name);
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        // not JSON: dropped below
      }
      const parsed = inputFileSchema.safeParse(json);
      if (parsed.success) found.push({ type: 'message', text: parsed.data.text });
      else log('input file dropped: not a message', { name });
    }
    if (names.includes(CLOSE_SENTINEL)) {
      found.push({ type: 'close' });
      this.closed = true;
    }
    if (found.length === 0) return;
    this.buffer.push(...found);
    for (const listener of [...this.listeners]) listener();
  }
}
