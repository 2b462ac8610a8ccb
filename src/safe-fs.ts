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
    entry: string,
    readonly reason: string,
  ) {
    super(`${entry}: ${reason}`);
  }
}

function tolerate(err: unknown, ...codes: string[]) {
  const { code } = err as NodeJS.ErrnoException;
  if (code && codes.includes(code)) return code;
  throw err;
}

function openDir(target: string, shown: string) {
  try {
    return fs.openSync(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    tolerate(err, 'ELOOP', 'ENOTDIR');
    throw new UnsafeEntryError(shown, 'not a folder (a link or a file sits there)');
  }
}

function using<D extends number | SafeDir, T>(d: D, fn: (d: D) => T) {
  try {
    return fn(d);
  } finally {
    if (typeof d === 'number') fs.closeSync(d);
    else d.close();
  }
}

/** `replace`: something else at the name (a link, a file) is removed, never followed, and a folder made. */
type SubdirOptions = { create?: boolean | undefined; replace?: boolean };

export class SafeDir {
  private constructor(
    private readonly fd: number,
    readonly path: string,
  ) {}

  /** Every parent is host-owned: a link there means tampering. */
  static open(dir: string, { create }: SubdirOptions = {}) {
    if (create) fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    return new SafeDir(openDir(dir, dir), dir);
  }

  private at(name: string) {
    if (!name || name === '.' || name === '..' || /[/\0]/.test(name))
      throw new UnsafeEntryError(name, 'not a single path segment');
    if (procFd) return `/proc/self/fd/${this.fd}/${name}`;
    if (!fs.lstatSync(this.path, { throwIfNoEntry: false })?.isDirectory())
      throw new UnsafeEntryError(this.path, 'folder was replaced');
    return path.join(this.path, name);
  }

  close() {
    fs.closeSync(this.fd);
  }

  subdir(name: string, { create, replace }: SubdirOptions = {}) {
    const shown = path.join(this.path, name);
    const isDir = this.lstat(name)?.isDirectory();
    if (isDir === false) {
      if (!replace) throw new UnsafeEntryError(shown, 'not a folder');
      this.remove(name);
    }
    if (!isDir && (create || replace))
      try {
        fs.mkdirSync(this.at(name), { mode: 0o755 });
      } catch (err) {
        tolerate(err, 'EEXIST');
      }
    return new SafeDir(openDir(this.at(name), shown), shown);
  }

  withSubdir<T>(name: string, options: SubdirOptions, fn: (dir: SafeDir) => T) {
    return using(this.subdir(name, options), fn);
  }

  list() {
    return fs.readdirSync(procFd ? `/proc/self/fd/${this.fd}` : this.path);
  }

  lstat(name: string) {
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
    return using(fd, () => {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new UnsafeEntryError(name, 'not a regular file');
      const { size } = stat;
      if (size > maxBytes)
        throw new UnsafeEntryError(name, `file is ${size} bytes; the limit is ${maxBytes}`);
      // At most the size fstat saw: a growing file cannot pass the cap.
      const buffer = Buffer.alloc(size);
      let offset = 0;
      for (let n = 1; n > 0 && offset < size; offset += n)
        n = fs.readSync(fd, buffer, offset, size - offset, offset);
      return buffer.subarray(0, offset);
    });
  }

  /** false when something (even a dangling link) has the name. */
  createFile(name: string, data: string | Buffer, mode = 0o644) {
    try {
      using(fs.openSync(this.at(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode), (fd) =>
        fs.writeFileSync(fd, data),
      );
      return true;
    } catch (err) {
      tolerate(err, 'EEXIST');
      return false;
    }
  }

  writeAtomic(name: string, data: string | Buffer, mode = 0o644) {
    const tmp = `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    if (!this.createFile(tmp, data, mode)) throw new UnsafeEntryError(tmp, 'temp name taken');
    try {
      this.moveTo(tmp, this, name);
    } catch (err) {
      this.remove(tmp);
      throw err;
    }
  }

  moveTo(name: string, to: SafeDir, toName = name) {
    fs.renameSync(this.at(name), to.at(toName));
  }

  remove(name: string) {
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

  chown(name: string, uid: number, gid: number) {
    fs.lchownSync(this.at(name), uid, gid);
  }

  chownTree(uid: number, gid: number) {
    for (const entry of this.list()) {
      const stat = this.lstat(entry);
      if (stat && (stat.uid !== uid || stat.gid !== gid)) this.chown(entry, uid, gid);
      if (stat?.isDirectory()) this.inSwappable(entry, (dir) => dir.chownTree(uid, gid));
    }
  }

  /** A folder swapped for a link since its lstat is skipped. */
  private inSwappable(name: string, fn: (dir: SafeDir) => void) {
    try {
      this.withSubdir(name, {}, fn);
    } catch (err) {
      if (!(err instanceof UnsafeEntryError)) throw err;
    }
  }

  stat = () => fs.fstatSync(this.fd);

  /** Only what differs is changed: an unchanged folder is not written to at all. */
  chownSelf(uid: number, gid: number, mode?: number) {
    const stat = this.stat();
    if (stat.uid !== uid || stat.gid !== gid) fs.fchownSync(this.fd, uid, gid);
    if (mode !== undefined && (stat.mode & 0o7777) !== mode) fs.fchmodSync(this.fd, mode);
  }
}

/** `root` is host-owned. */
export function withSafeDir<T>(root: string, names: string[], opts: SubdirOptions, fn: (d: SafeDir) => T) {
  const walk = (dir: SafeDir, [next, ...rest]: string[]): T =>
    next === undefined ? fn(dir) : dir.withSubdir(next, opts, (sub) => walk(sub, rest));
  return using(SafeDir.open(root, opts), (dir) => walk(dir, names));
}
