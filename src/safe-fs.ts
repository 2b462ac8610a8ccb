import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

// The one way the host touches agent-writable folders (ARCHITECTURE.md, "The link-safety rule").
// Without /proc (macOS) an lstat check of the folder stands in for the fd path, leaving a race.
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
const procFd = fs.existsSync('/proc/self/fd');

export class UnsafeEntryError extends Error {
  override name = 'UnsafeEntryError';
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`${entry}: ${reason}`);
  }
}

function tolerate(err: unknown, ...codes: string[]): string {
  const { code } = err as NodeJS.ErrnoException;
  if (code && codes.includes(code)) return code;
  throw err;
}

function openDir(target: string, shown: string): number {
  try {
    return fs.openSync(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    tolerate(err, 'ELOOP', 'ENOTDIR');
    throw new UnsafeEntryError(shown, 'not a folder (a link or a file sits there)');
  }
}

/** `replace`: something else at the name (a link, a file) is removed, never followed, and a folder made. */
type SubdirOptions = { create?: boolean | undefined; mode?: number; replace?: boolean };

function using<T>(dir: SafeDir, fn: (dir: SafeDir) => T): T {
  try {
    return fn(dir);
  } finally {
    dir.close();
  }
}

export class SafeDir {
  private constructor(
    private readonly fd: number,
    readonly path: string,
  ) {}

  /** Every parent is host-owned: a link there means tampering. */
  static open(dir: string, { create, mode = 0o755 }: SubdirOptions = {}): SafeDir {
    if (create) fs.mkdirSync(dir, { recursive: true, mode });
    return new SafeDir(openDir(dir, dir), dir);
  }

  private at(name: string): string {
    if (!name || name === '.' || name === '..' || /[/\0]/.test(name))
      throw new UnsafeEntryError(name, 'not a single path segment');
    if (procFd) return `/proc/self/fd/${this.fd}/${name}`;
    if (!fs.lstatSync(this.path, { throwIfNoEntry: false })?.isDirectory())
      throw new UnsafeEntryError(this.path, 'folder was replaced');
    return path.join(this.path, name);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  subdir(name: string, { create, replace, mode = 0o755 }: SubdirOptions = {}): SafeDir {
    const shown = path.join(this.path, name);
    const isDir = this.lstat(name)?.isDirectory();
    if (isDir === false) {
      if (!replace) throw new UnsafeEntryError(shown, 'not a folder');
      this.remove(name);
    }
    if (!isDir && (create || replace))
      try {
        fs.mkdirSync(this.at(name), { mode });
      } catch (err) {
        tolerate(err, 'EEXIST');
      }
    return new SafeDir(openDir(this.at(name), shown), shown);
  }

  withSubdir<T>(name: string, options: SubdirOptions, fn: (dir: SafeDir) => T): T {
    return using(this.subdir(name, options), fn);
  }

  list(): string[] {
    return fs.readdirSync(procFd ? `/proc/self/fd/${this.fd}` : this.path);
  }

  lstat(name: string): fs.Stats | undefined {
    return fs.lstatSync(this.at(name), { throwIfNoEntry: false });
  }

  readFile(name: string, maxBytes: number): Buffer | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.at(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      const code = tolerate(err, 'ENOENT', 'ELOOP', 'ENXIO');
      if (code === 'ENOENT') return undefined;
      throw new UnsafeEntryError(name, code === 'ELOOP' ? 'a symbolic link' : 'a socket');
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new UnsafeEntryError(name, 'not a regular file');
      if (stat.size > maxBytes)
        throw new UnsafeEntryError(name, `file is ${stat.size} bytes; the limit is ${maxBytes}`);
      // At most the size fstat saw: a growing file cannot pass the cap.
      const buffer = Buffer.alloc(stat.size);
      let offset = 0;
      for (let n = 1; n > 0 && offset < stat.size; offset += n)
        n = fs.readSync(fd, buffer, offset, stat.size - offset, offset);
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
      tolerate(err, 'EEXIST');
      return false;
    }
    try {
      fs.writeFileSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }

  writeAtomic(name: string, data: string | Buffer, mode = 0o644): void {
    const tmp = `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    if (!this.createFile(tmp, data, mode)) throw new UnsafeEntryError(tmp, 'temp name taken');
    try {
      this.moveTo(tmp, this, name);
    } catch (err) {
      this.remove(tmp);
      throw err;
    }
  }

  moveTo(name: string, to: SafeDir, toName = name): void {
    fs.renameSync(this.at(name), to.at(toName));
  }

  remove(name: string): void {
    try {
      if (this.lstat(name)?.isDirectory()) {
        this.inSwappable(name, (dir) => dir.list().forEach((entry) => dir.remove(entry)));
        try {
          return fs.rmdirSync(this.at(name));
        } catch (err) {
          tolerate(err, 'ENOTDIR'); // swapped for a file or a link since the lstat: unlinked
        }
      }
      fs.unlinkSync(this.at(name));
    } catch (err) {
      tolerate(err, 'ENOENT');
    }
  }

  chown(name: string, uid: number, gid: number): void {
    fs.lchownSync(this.at(name), uid, gid);
  }

  chownTree(uid: number, gid: number): void {
    for (const entry of this.list()) {
      const stat = this.lstat(entry);
      if (stat && (stat.uid !== uid || stat.gid !== gid)) this.chown(entry, uid, gid);
      if (stat?.isDirectory()) this.inSwappable(entry, (dir) => dir.chownTree(uid, gid));
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

/** `root` is host-owned. */
export function withSafeDir<T>(
  root: string,
  segments: string[],
  options: SubdirOptions,
  fn: (dir: SafeDir) => T,
): T {
  const walk = (dir: SafeDir, [next, ...rest]: string[]): T =>
    next === undefined ? fn(dir) : dir.withSubdir(next, options, (sub) => walk(sub, rest));
  return using(SafeDir.open(root, { create: options.create }), (dir) => walk(dir, segments));
}
