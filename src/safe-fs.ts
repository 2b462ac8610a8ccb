import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The one way the host touches files in agent-writable folders. A folder is opened once
 * (O_NOFOLLOW) from a host-owned parent; later calls name one entry in it via /proc/self/fd/<fd>/,
 * which stays the opened folder even if its path is swapped (without /proc, e.g. macOS, an lstat
 * check leaves a race). O_NONBLOCK: a FIFO cannot block the host. O_EXCL creates.
 */

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
const procFd = fs.existsSync('/proc/self/fd');

export class UnsafeEntryError extends Error {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`${entry}: ${reason}`);
    this.name = 'UnsafeEntryError';
  }
}

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

function openDir(target: string, shown: string): number {
  try {
    return fs.openSync(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    if (code(err) === 'ELOOP' || code(err) === 'ENOTDIR')
      throw new UnsafeEntryError(shown, 'not a folder (a link or a file sits there)');
    throw err;
  }
}

export interface SubdirOptions {
  create?: boolean;
  mode?: number;
  /** Something else at the name (a link, a file) is removed, never followed, and a folder made. */
  replace?: boolean;
}

export class SafeDir {
  private constructor(
    private readonly fd: number,
    readonly path: string,
  ) {}

  /** A folder whose every parent is host-owned; a link there means tampering. */
  static open(dir: string, options: SubdirOptions = {}): SafeDir {
    if (options.create) fs.mkdirSync(dir, { recursive: true, mode: options.mode ?? 0o755 });
    return new SafeDir(openDir(dir, dir), dir);
  }

  private at(name: string): string {
    if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
      throw new UnsafeEntryError(name, 'not a single path segment');
    if (procFd) return `/proc/self/fd/${this.fd}/${name}`;
    if (!fs.lstatSync(this.path, { throwIfNoEntry: false })?.isDirectory())
      throw new UnsafeEntryError(this.path, 'folder was replaced');
    return path.join(this.path, name);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  subdir(name: string, options: SubdirOptions = {}): SafeDir {
    const target = this.at(name);
    const shown = path.join(this.path, name);
    const isDir = this.lstat(name)?.isDirectory();
    if (isDir === false) {
      if (!options.replace) throw new UnsafeEntryError(shown, 'not a folder');
      this.remove(name);
    }
    if (!isDir && (options.create || options.replace)) {
      try {
        fs.mkdirSync(target, { mode: options.mode ?? 0o755 });
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
    }
    return new SafeDir(openDir(target, shown), shown);
  }

  withSubdir<T>(name: string, options: SubdirOptions, fn: (dir: SafeDir) => T): T {
    const dir = this.subdir(name, options);
    try {
      return fn(dir);
    } finally {
      dir.close();
    }
  }

  list(): string[] {
    return fs.readdirSync(procFd ? `/proc/self/fd/${this.fd}` : this.path);
  }

  lstat(name: string): fs.Stats | undefined {
    return fs.lstatSync(this.at(name), { throwIfNoEntry: false });
  }

  /** A regular file of at most `maxBytes`, else UnsafeEntryError; missing: undefined. */
  readFile(name: string, maxBytes: number): Buffer | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.at(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      if (code(err) === 'ENOENT') return undefined;
      if (code(err) === 'ELOOP') throw new UnsafeEntryError(name, 'a symbolic link');
      if (code(err) === 'ENXIO') throw new UnsafeEntryError(name, 'a socket');
      throw err;
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new UnsafeEntryError(name, 'not a regular file');
      if (stat.size > maxBytes)
        throw new UnsafeEntryError(name, `file is ${stat.size} bytes; the limit is ${maxBytes}`);
      // At most the size fstat saw: a growing file cannot pass the cap.
      const buffer = Buffer.alloc(stat.size);
      let offset = 0;
      for (let n = 1; n > 0 && offset < buffer.length; offset += n)
        n = fs.readSync(fd, buffer, offset, buffer.length - offset, offset);
      return buffer.subarray(0, offset);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** false when something (even a dangling link) has the name. */
  createFile(name: string, data: string | Buffer, mode = 0o644): boolean {
    let fd: number;
    try {
      fd = fs.openSync(this.at(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    } catch (err) {
      if (code(err) === 'EEXIST') return false;
      throw err;
    }
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }

  /** Replaces `name` whole (a link there is replaced, not followed). */
  writeAtomic(name: string, data: string | Buffer, mode = 0o644): void {
    const tmp = `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    if (!this.createFile(tmp, data, mode)) throw new UnsafeEntryError(tmp, 'temp name taken');
    try {
      fs.renameSync(this.at(tmp), this.at(name));
    } catch (err) {
      this.remove(tmp);
      throw err;
    }
  }

  moveTo(name: string, to: SafeDir, toName = name): void {
    fs.renameSync(this.at(name), to.at(toName));
  }

  /** A folder with its content; links are removed, not followed. */
  remove(name: string): void {
    const stat = this.lstat(name);
    if (!stat) return;
    if (stat.isDirectory()) {
      // Swapped between the lstat and the open: unlink whatever is there now.
      this.inSwappable(name, (dir) => dir.list().forEach((entry) => dir.remove(entry)));
      try {
        return fs.rmdirSync(this.at(name));
      } catch (err) {
        if (code(err) === 'ENOENT') return;
        if (code(err) !== 'ENOTDIR') throw err;
      }
    }
    try {
      fs.unlinkSync(this.at(name));
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
  }

  chown(name: string, uid: number, gid: number): void {
    fs.lchownSync(this.at(name), uid, gid);
  }

  chownTree(uid: number, gid: number): void {
    for (const entry of this.list()) {
      const stat = this.lstat(entry);
      if (!stat) continue;
      if (stat.uid !== uid || stat.gid !== gid) this.chown(entry, uid, gid);
      if (stat.isDirectory()) this.inSwappable(entry, (dir) => dir.chownTree(uid, gid));
    }
  }

  /** A folder swapped for a link since its lstat is skipped. */
  private inSwappable(name: string, fn: (dir: SafeDir) => void): void {
    try {
      this.withSubdir(name, {}, fn);
    } catch (err) {
      if (!(err instanceof UnsafeEntryError)) throw err;
    }
  }

  stat(): fs.Stats {
    return fs.fstatSync(this.fd);
  }

  /** Only what differs is changed: an unchanged folder is not written to at all. */
  chownSelf(uid: number, gid: number, mode?: number): void {
    const stat = this.stat();
    if (stat.uid !== uid || stat.gid !== gid) fs.fchownSync(this.fd, uid, gid);
    if (mode !== undefined && (stat.mode & 0o7777) !== mode) fs.fchmodSync(this.fd, mode);
  }
}

/** Opens host-owned `root`, then each segment below it. */
export function withSafeDir<T>(
  root: string,
  segments: string[],
  options: SubdirOptions,
  fn: (dir: SafeDir) => T,
): T {
  const opened = [SafeDir.open(root, { create: options.create ?? false })];
  try {
    for (const segment of segments) opened.push(opened.at(-1)!.subdir(segment, options));
    return fn(opened.at(-1)!);
  } finally {
    for (const dir of opened.reverse()) dir.close();
  }
}
