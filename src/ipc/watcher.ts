import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isValidFolder, MAX_IPC_FILE_BYTES, requestIdSchema, type IpcResponse } from '../contract/ipc.js';
import { logFailure, logger } from '../logger.js';
import { type SafeDir, UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import { FROM_AGENT, writeResponse } from './to-agent.js';

const KINDS = ['messages', 'tasks'] as const;
export type IpcKind = (typeof KINDS)[number];

/** Files per event-loop turn, so a flood never stalls the host. */
const FILES_PER_TURN = 50;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json$/;

/** Oldest first, one file at a time per folder; a file with a `requestId` is always answered. */
export class IpcWatcher {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private poll?: NodeJS.Timeout;
  private readonly busy = new Map<string, boolean>();
  private stopped = false;

  constructor(
    private readonly deps: {
      ipcDir: string;
      pollMs: number;
      groups(): RegisteredGroup[];
      handle(kind: IpcKind, payload: unknown, source: RegisteredGroup): Promise<IpcResponse>;
    },
  ) {}

  start(): void {
    this.stopped = false;
    this.syncWatchers();
    this.poll = setInterval(() => this.syncWatchers(), this.deps.pollMs).unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    this.watchers.forEach((w) => w.close());
    this.watchers.clear();
  }

  syncWatchers(): void {
    // An unsafe folder name is never joined into a path.
    for (const { folder } of this.deps.groups().filter((g) => isValidFolder(g.folder)))
      for (const kind of KINDS) {
        const dir = path.join(this.deps.ipcDir, folder, FROM_AGENT, kind);
        if (!this.watchers.has(dir))
          logFailure(
            `cannot watch ${dir}`,
            {},
            () => {
              // fs.watch only wakes a scan, which never trusts the path.
              this.openKindDir(folder, kind).close();
              const watcher = fs
                .watch(dir, () => this.scan(folder, kind))
                .on('error', () => (watcher.close(), this.watchers.delete(dir)));
              this.watchers.set(dir, watcher);
            },
            'error',
          );
        this.scan(folder, kind);
      }
  }

  private scan(folder: string, kind: IpcKind): void {
    const key = `${folder}/${kind}`;
    if (this.stopped) return;
    if (this.busy.has(key)) return void this.busy.set(key, true);
    this.busy.set(key, false);
    void this.drain(folder, kind).finally(() => {
      const again = this.busy.get(key);
      this.busy.delete(key);
      if (again) this.scan(folder, kind);
    });
  }

  // A link or file in place of from-agent/<kind>/ is replaced by a folder.
  private openKindDir = (folder: string, kind: IpcKind): SafeDir =>
    withSafeDir(this.deps.ipcDir, [folder, FROM_AGENT], { create: true }, (from) =>
      from.subdir(kind, { create: true, replace: true }),
    );

  private async drain(folder: string, kind: IpcKind): Promise<void> {
    let dir: SafeDir | undefined;
    try {
      dir = this.openKindDir(folder, kind);
      const names = dir
        .list()
        .filter((n) => n.endsWith('.json'))
        .sort();
      for (const [i, name] of names.entries()) {
        // The group as it is now: a demoted or removed one has lost its rights.
        const group = this.deps.groups().find((g) => g.folder === folder);
        if (this.stopped || !group) return;
        await this.processFile(dir, name, group, kind);
        if (i % FILES_PER_TURN === FILES_PER_TURN - 1) await new Promise(setImmediate);
      }
    } catch (err) {
      logger.warn({ folder, kind, err: String(err) }, 'cannot read ipc folder');
    } finally {
      dir?.close();
    }
  }

  private async processFile(dir: SafeDir, name: string, group: RegisteredGroup, kind: IpcKind) {
    const file = `${group.folder}/${kind}/${name}`;
    let bytes: Buffer | undefined;
    let payload: unknown;
    let result: IpcResponse;
    try {
      if (!FILE_NAME.test(name)) throw new UnsafeEntryError(name, 'name not allowed');
      bytes = dir.readFile(name, MAX_IPC_FILE_BYTES);
      if (!bytes) return;
      payload = JSON.parse(bytes.toString('utf8'));
      result = await this.deps.handle(kind, payload, group);
    } catch (err) {
      const why = err instanceof SyntaxError ? 'unreadable JSON' : 'handler failed';
      result = {
        ok: false,
        error: err instanceof UnsafeEntryError ? err.reason : `${why}: ${(err as Error).message}`,
      };
    }
    const id = requestIdSchema.safeParse((payload as { requestId?: unknown } | null)?.requestId);
    if (id.success)
      logFailure(
        `cannot answer ${file}`,
        {},
        () => writeResponse(this.deps, group.folder, id.data, result),
        'error',
      );
    logFailure(`cannot remove ${file}`, {}, () => dir.remove(name), 'error');
    if (result.ok) return;
    // The bytes read, never the agent's entry itself.
    logger.warn({ file, reason: result.error }, 'ipc file refused');
    logFailure(
      `cannot quarantine ${file}`,
      {},
      () =>
        withSafeDir(this.deps.ipcDir, ['errors'], { create: true }, (errors) => {
          const target = `${group.folder}-${kind}-${Date.now()}-${crypto.randomBytes(4).toString('hex')}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128)}`;
          errors.createFile(target, bytes ?? '', 0o600);
          errors.createFile(`${target}.reason.txt`, `${result.error}\n`, 0o600);
        }),
      'error',
    );
  }
}
