import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder, MAX_IPC_FILE_BYTES, requestIdSchema } from '../contract/ipc.js';
import { logger } from '../logger.js';
import { type SafeDir, UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import type { IpcResult } from './task-handler.js';
import { FROM_AGENT, writeResponse } from './to-agent.js';

const KINDS = ['messages', 'tasks'] as const;
export type IpcKind = (typeof KINDS)[number];

/** Files handled between two turns of the event loop, so a flood never stalls the host. */
const FILES_PER_TURN = 50;
/** The runner writes `<ms>-<rand>.json`; room for hand-written names. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$/;

export interface IpcWatcherDeps {
  ipcDir: string;
  pollMs: number;
  groups(): RegisteredGroup[];
  handle(kind: IpcKind, payload: unknown, source: RegisteredGroup): Promise<IpcResult>;
}

/** Oldest first, one file at a time per folder; a file with a `requestId` is answered, refused or not. */
export class IpcWatcher {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private poll: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private readonly again = new Set<string>();
  private stopped = false;

  constructor(private readonly deps: IpcWatcherDeps) {}

  start(): void {
    this.stopped = false;
    this.syncWatchers();
    this.poll = setInterval(() => this.syncWatchers(), this.deps.pollMs).unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  syncWatchers(): void {
    // An unsafe folder name is never joined into a path.
    for (const group of this.deps.groups().filter((g) => isValidFolder(g.folder)))
      for (const kind of KINDS) {
        this.watch(group, kind);
        this.scan(group, kind);
      }
  }

  private watch(group: RegisteredGroup, kind: IpcKind): void {
    const dir = path.join(this.deps.ipcDir, group.folder, FROM_AGENT, kind);
    if (this.watchers.has(dir)) return;
    try {
      // fs.watch only wakes a scan; the scan itself never trusts the path.
      this.openKindDir(group, kind).close();
      const watcher = fs
        .watch(dir, () => this.scan(group, kind))
        .on('error', (err) => {
          logger.warn({ dir, err }, 'ipc watch failed; the poll still covers it');
          watcher.close();
          this.watchers.delete(dir);
        });
      this.watchers.set(dir, watcher);
    } catch (err) {
      logger.warn({ dir, err }, 'cannot watch ipc dir');
    }
  }

  private scan(group: RegisteredGroup, kind: IpcKind): void {
    const key = `${group.folder}/${kind}`;
    if (this.stopped) return;
    if (this.busy.has(key)) return void this.again.add(key);
    this.busy.add(key);
    void this.drain(group, kind).finally(() => {
      this.busy.delete(key);
      if (this.again.delete(key)) this.scan(group, kind);
    });
  }

  // A link or file in place of from-agent/<kind>/ is replaced by a folder.
  private openKindDir(group: RegisteredGroup, kind: IpcKind): SafeDir {
    return withSafeDir(this.deps.ipcDir, [group.folder, FROM_AGENT], { create: true }, (from) =>
      from.subdir(kind, { create: true, replace: true }),
    );
  }

  private async drain(group: RegisteredGroup, kind: IpcKind): Promise<void> {
    let dir: SafeDir | undefined;
    try {
      dir = this.openKindDir(group, kind);
      const names = dir.list().filter((n) => n.endsWith('.json'));
      for (const [i, name] of names.sort().entries()) {
        // The group as it is now: one demoted (or removed) since its watcher started has lost its rights.
        const current = this.deps.groups().find((g) => g.folder === group.folder);
        if (this.stopped || !current) return;
        await this.processFile(dir, name, current, kind);
        if (i % FILES_PER_TURN === FILES_PER_TURN - 1) await new Promise(setImmediate);
      }
    } catch (err) {
      logger.warn({ group: group.folder, kind, err: String(err) }, 'cannot read ipc folder');
    } finally {
      dir?.close();
    }
  }

  private async processFile(
    dir: SafeDir,
    name: string,
    group: RegisteredGroup,
    kind: IpcKind,
  ): Promise<void> {
    let bytes: Buffer | undefined;
    let payload: unknown;
    try {
      if (!FILE_NAME.test(name)) throw new UnsafeEntryError(name, 'name not allowed');
      bytes = dir.readFile(name, MAX_IPC_FILE_BYTES);
      if (!bytes) return;
      payload = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      const reason =
        err instanceof UnsafeEntryError ? err.reason : `unreadable JSON: ${(err as Error).message}`;
      return this.quarantine(dir, name, group, kind, reason, bytes);
    }
    const result = await this.deps
      .handle(kind, payload, group)
      .catch((err: Error): IpcResult => ({ ok: false, error: `handler failed: ${err.message}` }));
    const id = requestIdSchema.safeParse((payload as { requestId?: unknown } | null)?.requestId);
    if (id.success)
      this.tryTo('answer ipc request', group, name, () =>
        writeResponse(this.deps, group.folder, id.data, result),
      );
    if (!result.ok) return this.quarantine(dir, name, group, kind, result.error, bytes);
    this.tryTo('remove handled ipc file', group, name, () => dir.remove(name));
  }

  /** Keeps the bytes read (never the agent's entry itself) in the host-owned errors/. */
  private quarantine(
    dir: SafeDir,
    name: string,
    group: RegisteredGroup,
    kind: IpcKind,
    reason: string,
    bytes: Buffer | undefined,
  ): void {
    logger.warn({ group: group.folder, file: name, reason }, 'ipc file refused');
    this.tryTo('remove refused ipc file', group, name, () => dir.remove(name));
    this.tryTo('quarantine ipc file', group, name, () =>
      withSafeDir(this.deps.ipcDir, ['errors'], { create: true }, (errors) => {
        const unique = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
        const target = `${group.folder}-${kind}-${unique}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128)}`;
        errors.createFile(target, bytes ?? '', 0o600);
        errors.createFile(`${target}.reason.txt`, `${reason}\n`, 0o600);
      }),
    );
  }

  private tryTo(what: string, group: RegisteredGroup, name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      logger.error({ group: group.folder, name, err: String(err) }, `cannot ${what}`);
    }
  }
}
