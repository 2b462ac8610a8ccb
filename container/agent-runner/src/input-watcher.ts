import fs from 'node:fs';
import path from 'node:path';
// zod 3 API: loads much faster than zod 4's, and this is on every cold start (see nanoclaw-tools.ts).
import { z } from 'zod/v3';
import { log } from './log.js';

/**
 * input/*.json written by the host (temp name, then rename) in the read-only host-to-agent part;
 * `_close` ends the sandbox.
 */
const inputFileSchema = z.object({ type: z.literal('message'), text: z.string() });

export type InputEvent = { type: 'message'; text: string } | { type: 'close' };

export const CLOSE_SENTINEL = '_close';

/** Oldest first: names start with the host's millisecond timestamp. */
function byAge(a: string, b: string): number {
  const ta = Number.parseInt(a, 10);
  const tb = Number.parseInt(b, 10);
  if (Number.isFinite(ta) && Number.isFinite(tb) && ta !== tb) return ta - tb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Watches the input directory with fs.watch plus a slow poll (fs.watch misses events on some
 * mounts) and hands each event out once, in order. The folder is read-only here: the names already
 * read are remembered instead of deleting the files (the host clears the folder before each run).
 * After `_close`, nothing more is read.
 */
export class InputWatcher {
  private readonly buffer: InputEvent[] = [];
  private readonly listeners = new Set<() => void>();
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly consumed = new Set<string>();

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
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** Called whenever new events are buffered; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (this.buffer.length > 0) listener();
    return () => this.listeners.delete(listener);
  }

  /** The next buffered event, if any, without waiting. */
  take(): InputEvent | undefined {
    return this.buffer.shift();
  }

  /** Waits for the next event. */
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

  /** Reads every complete file now present, oldest first, `_close` last. */
  scan(): void {
    if (this.closed) return;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    const found: InputEvent[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort(byAge)) {
      if (this.consumed.has(name)) continue;
      let raw: string;
      try {
        raw = fs.readFileSync(path.join(this.dir, name), 'utf8');
      } catch {
        continue; // gone: the host cleared the folder
      }
      this.consumed.add(name);
      const text = this.parse(raw, name);
      if (text !== undefined) found.push({ type: 'message', text });
    }
    if (names.includes(CLOSE_SENTINEL)) {
      found.push({ type: 'close' });
      this.closed = true;
    }
    if (found.length === 0) return;
    this.buffer.push(...found);
    for (const listener of [...this.listeners]) listener();
  }

  private parse(raw: string, name: string): string | undefined {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      log('input file is not JSON, dropped', { name });
      return undefined;
    }
    const parsed = inputFileSchema.safeParse(json);
    if (!parsed.success) {
      log('input file has the wrong shape, dropped', { name, issues: parsed.error.issues.length });
      return undefined;
    }
    return parsed.data.text;
  }
}
