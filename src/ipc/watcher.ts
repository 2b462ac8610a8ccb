import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder } from '../config.js';
import { logger } from '../logger.js';
import { SafeDir, UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import { MAX_IPC_FILE_BYTES } from './schemas.js';
import type { IpcResult } from './message-handler.js';
import { FROM_AGENT } from './to-agent.js';
import type { RegisteredGroup } from '../types.js';

export type IpcKind = 'messages' | 'tasks';

/** Files handled between two turns of the event loop, so a flood never stalls the host. */
const FILES_PER_TURN = 50;
/** What the agent-runner writes (`<ms>-<rand>.json`), with room for hand-written names. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$/;

export interface IpcWatcherDeps {
  ipcDir: string;
  pollMs: number;
  groups(): RegisteredGroup[];
  handle(kind: IpcKind, payload: unknown, source: RegisteredGroup): Promise<IpcResult>;
}

/**
 * Finds IPC files written by sandboxes in data/ipc/<folder>/from-agent/{messages,tasks}/: fs.watch
 * for speed, plus a slow poll because fs.watch can miss events on some platforms and filesystems.
 * Everything there is the agent's, so it is read through safe-fs only: a link, FIFO or folder in
 * place of a file (or of messages/ itself) is refused, never followed or waited on. Files are
 * handled oldest first, one at a time per directory; bad or refused ones are copied to
 * data/ipc/errors/ with the reason, removed, and never crash the host.
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
        const dir = path.join(this.deps.ipcDir, group.folder, FROM_AGENT, kind);
        if (this.watchers.has(dir)) continue;
        try {
          // fs.watch only wakes a scan; the scan itself never trusts the path.
          this.openKindDir(group, kind).close();
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
    const dir = `${group.folder}/${kind}`;
    if (this.busy.has(dir)) {
      this.again.add(dir);
      return;
    }
    this.busy.add(dir);
    void this.drain(group, kind).finally(() => {
      this.busy.delete(dir);
      if (this.again.delete(dir)) this.scan(group, kind);
    });
  }

  /** from-agent/<kind>/, opened link-safely; a link or file in its place is replaced by a folder. */
  private openKindDir(group: RegisteredGroup, kind: IpcKind): SafeDir {
    return withSafeDir(this.deps.ipcDir, [group.folder, FROM_AGENT], { create: true }, (from) => {
      const stat = from.lstat(kind);
      if (stat && !stat.isDirectory())
        logger.warn({ group: group.folder, kind }, 'ipc folder was not a folder; replaced, not followed');
      return from.subdir(kind, { create: true, replace: true });
    });
  }

  private async drain(group: RegisteredGroup, kind: IpcKind): Promise<void> {
    let dir: SafeDir;
    let names: string[];
    try {
      dir = this.openKindDir(group, kind);
      names = dir
        .list()
        .filter((n) => n.endsWith('.json'))
        .sort();
    } catch (err) {
      logger.warn({ group: group.folder, kind, err: String(err) }, 'cannot read ipc folder');
      return;
    }
    try {
      let handled = 0;
      for (const name of names) {
        if (this.stopped) return;
        await this.processFile(dir, name, group, kind);
        if (++handled % FILES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      dir.close();
    }
  }

  async processFile(dir: SafeDir, name: string, group: RegisteredGroup, kind: IpcKind): Promise<void> {
    let payload: unknown;
    let bytes: Buffer | undefined;
    try {
      if (!FILE_NAME.test(name)) throw new UnsafeEntryError(name, 'name not allowed');
      bytes = dir.readFile(name, MAX_IPC_FILE_BYTES);
      if (bytes === undefined) return;
      payload = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      const reason =
        err instanceof UnsafeEntryError ? err.reason : `unreadable JSON: ${(err as Error).message}`;
      return this.quarantine(dir, name, group, kind, reason, bytes);
    }
    let result: IpcResult;
    try {
      result = await this.deps.handle(kind, payload, group);
    } catch (err) {
      result = { ok: false, error: `handler failed: ${(err as Error).message}` };
    }
    if (!result.ok) return this.quarantine(dir, name, group, kind, result.error, bytes);
    try {
      dir.remove(name);
    } catch (err) {
      logger.warn({ group: group.folder, name, err: String(err) }, 'cannot remove handled ipc file');
    }
  }

  /**
   * Keeps the evidence in data/ipc/errors/ (host-owned): the bytes read, never the agent's entry
   * itself, which is removed without being followed.
   */
  private quarantine(
    dir: SafeDir,
    name: string,
    group: RegisteredGroup,
    kind: IpcKind,
    reason: string,
    bytes: Buffer | undefined,
  ): void {
    logger.warn({ group: group.folder, file: name, reason }, 'ipc file refused');
    try {
      dir.remove(name);
    } catch (err) {
      logger.error({ group: group.folder, name, err: String(err) }, 'cannot remove refused ipc file');
    }
    try {
      withSafeDir(this.deps.ipcDir, ['errors'], { create: true }, (errors) => {
        // Unique even for same-named files of one group arriving within a millisecond: an earlier
        // one must not be overwritten.
        const stem = `${group.folder}-${kind}-${Date.now()}`;
        const safeName = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128);
        for (let n = 0; n < 1000; n++) {
          const target = `${stem}${n ? `.${n}` : ''}-${safeName}`;
          if (errors.lstat(target) || errors.lstat(`${target}.reason.txt`)) continue;
          errors.createFile(target, bytes ?? '', 0o600);
          errors.createFile(`${target}.reason.txt`, `${reason}\n`, 0o600);
          return;
        }
      });
    } catch (err) {
      logger.error({ group: group.folder, name, err: String(err) }, 'cannot quarantine ipc file');
    }
  }
}
