import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder } from '../config.js';
import { logger } from '../logger.js';
import { MAX_IPC_FILE_BYTES } from './schemas.js';
import type { IpcResult } from './message-handler.js';
import type { RegisteredGroup } from '../types.js';

export type IpcKind = 'messages' | 'tasks';

/** Files handled between two turns of the event loop, so a flood never stalls the host. */
const FILES_PER_TURN = 50;

export interface IpcWatcherDeps {
  ipcDir: string;
  pollMs: number;
  groups(): RegisteredGroup[];
  handle(kind: IpcKind, payload: unknown, source: RegisteredGroup): Promise<IpcResult>;
}

/**
 * Finds IPC files written by sandboxes: fs.watch for speed, plus a slow poll because fs.watch can
 * miss events on some platforms and filesystems. Files are handled oldest first, one at a time per
 * directory; bad or refused ones are moved to data/ipc/errors/ and never crash the host.
 */
export class IpcWatcher {
  private watchers = new Map<string, fs.FSWatcher>();
  private pollTimer: NodeJS.Timeout | null = null;
  private busy = new Set<string>();
  private again = new Set<string>();
  private stopped = false;
  private readonly refusedFolders = new Set<string>();

  constructor(private readonly deps: IpcWatcherDeps) {}

  start(): void {
    this.stopped = false;
    this.syncWatchers();
    this.pollTimer = setInterval(() => {
      this.syncWatchers();
      for (const g of this.groups()) for (const kind of ['messages', 'tasks'] as const) this.scan(g, kind);
    }, this.deps.pollMs);
    this.pollTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watch the dirs of every registered group (new groups appear at runtime). */
  syncWatchers(): void {
    for (const group of this.groups()) {
      for (const kind of ['messages', 'tasks'] as const) {
        const dir = path.join(this.deps.ipcDir, group.folder, kind);
        if (this.watchers.has(dir)) continue;
        try {
          fs.mkdirSync(dir, { recursive: true });
          const watcher = fs.watch(dir, () => this.scan(group, kind));
          watcher.on('error', (err) => {
            logger.warn({ dir, err }, 'ipc watch failed; the poll still covers it');
            watcher.close();
            this.watchers.delete(dir);
          });
          this.watchers.set(dir, watcher);
          this.scan(group, kind);
        } catch (err) {
          logger.warn({ dir, err }, 'cannot watch ipc dir');
        }
      }
    }
  }

  /** Groups whose folder is a safe path segment; anything else is never joined into a path. */
  private groups(): RegisteredGroup[] {
    return this.deps.groups().filter((group) => {
      if (isValidFolder(group.folder)) return true;
      if (!this.refusedFolders.has(group.folder)) {
        this.refusedFolders.add(group.folder);
        logger.error(
          { folder: group.folder, jid: group.jid },
          'group has an invalid folder; its IPC is ignored',
        );
      }
      return false;
    });
  }

  /** Handles every complete file in one group's dir; re-runs if new files arrived meanwhile. */
  scan(group: RegisteredGroup, kind: IpcKind): void {
    if (this.stopped) return;
    const dir = path.join(this.deps.ipcDir, group.folder, kind);
    if (this.busy.has(dir)) {
      this.again.add(dir);
      return;
    }
    this.busy.add(dir);
    void this.drain(dir, group, kind).finally(() => {
      this.busy.delete(dir);
      if (this.again.delete(dir)) this.scan(group, kind);
    });
  }

  private async drain(dir: string, group: RegisteredGroup, kind: IpcKind): Promise<void> {
    let names: string[];
    try {
      names = fs
        .readdirSync(dir)
        .filter((n) => n.endsWith('.json'))
        .sort();
    } catch {
      return;
    }
    let handled = 0;
    for (const name of names) {
      if (this.stopped) return;
      await this.processFile(path.join(dir, name), group, kind);
      if (++handled % FILES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async processFile(file: string, group: RegisteredGroup, kind: IpcKind): Promise<void> {
    let payload: unknown;
    try {
      const stat = fs.lstatSync(file);
      if (!stat.isFile()) return this.quarantine(file, group, kind, 'not a regular file');
      if (stat.size > MAX_IPC_FILE_BYTES) {
        return this.quarantine(
          file,
          group,
          kind,
          `file is ${stat.size} bytes; the limit is ${MAX_IPC_FILE_BYTES}`,
        );
      }
      const text = fs.readFileSync(file, 'utf8');
      payload = JSON.parse(text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      return this.quarantine(file, group, kind, `unreadable JSON: ${(err as Error).message}`);
    }
    let result: IpcResult;
    try {
      result = await this.deps.handle(kind, payload, group);
    } catch (err) {
      result = { ok: false, error: `handler failed: ${(err as Error).message}` };
    }
    if (!result.ok) return this.quarantine(file, group, kind, result.error);
    try {
      fs.unlinkSync(file);
    } catch {
      /* already gone */
    }
  }

  private quarantine(file: string, group: RegisteredGroup, kind: IpcKind, reason: string): void {
    const errorsDir = path.join(this.deps.ipcDir, 'errors');
    // Unique even for same-named files of one group arriving within a millisecond: renaming onto
    // an earlier one would silently drop the evidence.
    const stem = `${group.folder}-${kind}-${Date.now()}`;
    const taken = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
    let target = path.join(errorsDir, `${stem}-${path.basename(file)}`);
    for (let n = 1; taken(target) || taken(`${target}.reason.txt`); n++)
      target = path.join(errorsDir, `${stem}.${n}-${path.basename(file)}`);
    logger.warn({ group: group.folder, file: path.basename(file), reason }, 'ipc file refused');
    try {
      fs.mkdirSync(errorsDir, { recursive: true });
      fs.renameSync(file, target);
      fs.writeFileSync(`${target}.reason.txt`, `${reason}\n`);
    } catch (err) {
      logger.error({ file, err }, 'cannot quarantine ipc file; deleting it');
      try {
        fs.rmSync(file, { force: true });
      } catch {
        /* nothing else to do */
      }
    }
  }
}
