import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The one way the host touches files in folders an agent can write (its group folder, its IPC,
 * its session dir). An agent may put a symlink, a FIFO or a swapped folder at any name at any
 * moment, so nothing here resolves a path through such a folder:
 *
 * - A folder is opened once, with O_DIRECTORY | O_NOFOLLOW, starting from a host-owned parent.
 *   Every later call names a single entry inside that open folder, through `/proc/self/fd/<fd>/`,
 *   which the kernel resolves to the folder that was opened, even if its path has since been
 *   swapped for a link. (Where /proc is missing, e.g. macOS, the path is used after an lstat
 *   check: a race with a parent swap remains there.)
 * - The last component is never followed: files are opened with O_NOFOLLOW | O_NONBLOCK (a FIFO
 *   cannot block the host), checked with fstat on the open handle, and created with O_EXCL.
 * - Names are single path segments; anything with a slash or a dot-name is refused.
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

function checkName(name: string): void {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new UnsafeEntryError(name, 'not a single path segment');
}

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

export interface SubdirOptions {
  /** Create the folder when it is missing. */
  create?: boolean;
  /** Mode of a folder created here (before the umask). */
  mode?: number;
  /** Something else at the name (a link, a file) is removed, never followed, and a folder made. */
  replace?: boolean;
}

/** An open folder. Close it when done; `using` is not available on Node 20. */
export class SafeDir {
  private constructor(
    private readonly fd: number,
    /** Where the folder was opened; for messages and for the no-/proc fallback only. */
    readonly path: string,
  ) {}

  /**
   * Opens a folder whose every parent is host-owned (e.g. data/ipc, groups/). The folder itself
   * must not be a link: a link there means someone tampered with a host-owned tree.
   */
  static open(dir: string, options: SubdirOptions = {}): SafeDir {
    if (options.create) fs.mkdirSync(dir, { recursive: true, mode: options.mode ?? 0o755 });
    return SafeDir.fromPath(dir);
  }

  private static fromPath(dir: string): SafeDir {
    let fd: number;
    try {
      fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      if (code(err) === 'ELOOP' || code(err) === 'ENOTDIR')
        throw new UnsafeEntryError(dir, 'not a folder (a link or a file sits there)');
      throw err;
    }
    return new SafeDir(fd, dir);
  }

  /** The path that reaches `name` inside this open folder, not through its current path. */
  private at(name: string): string {
    checkName(name);
    if (procFd) return `/proc/self/fd/${this.fd}/${name}`;
    const stat = fs.lstatSync(this.path, { throwIfNoEntry: false });
    if (!stat?.isDirectory()) throw new UnsafeEntryError(this.path, 'folder was replaced');
    return path.join(this.path, name);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Opens `name` inside this folder as a folder; never follows a link there. */
  subdir(name: string, options: SubdirOptions = {}): SafeDir {
    const target = this.at(name);
    const stat = this.lstat(name);
    if (stat && !stat.isDirectory()) {
      if (!options.replace) throw new UnsafeEntryError(path.join(this.path, name), 'not a folder');
      this.remove(name);
    }
    if ((!stat || !stat.isDirectory()) && (options.create || options.replace)) {
      try {
        fs.mkdirSync(target, { mode: options.mode ?? 0o755 });
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
    }
    let fd: number;
    try {
      fd = fs.openSync(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      if (code(err) === 'ELOOP' || code(err) === 'ENOTDIR')
        throw new UnsafeEntryError(path.join(this.path, name), 'not a folder (swapped for a link)');
      throw err;
    }
    return new SafeDir(fd, path.join(this.path, name));
  }

  /** Runs `fn` on a subfolder and closes it afterwards. */
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

  /** The entry itself, never what a link points to; undefined when missing. */
  lstat(name: string): fs.Stats | undefined {
    return fs.lstatSync(this.at(name), { throwIfNoEntry: false });
  }

  /**
   * Reads a regular file of at most `maxBytes`. A link, FIFO, socket, device or folder at the name
   * is refused with UnsafeEntryError; so is a file over the cap. Missing: undefined.
   */
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
      const buffer = Buffer.alloc(stat.size);
      let offset = 0;
      while (offset < buffer.length) {
        const n = fs.readSync(fd, buffer, offset, buffer.length - offset, offset);
        if (n === 0) break;
        offset += n;
      }
      return buffer.subarray(0, offset);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Creates a new file; false when something (even a dangling link) already has the name. */
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

  /**
   * Replaces `name` atomically: a reader sees the old content or the new, never half. The rename
   * replaces whatever entry sits at the name (a link is replaced, not followed).
   */
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

  /** Moves a file this host created into another open folder. */
  moveTo(name: string, to: SafeDir, toName = name): void {
    fs.renameSync(this.at(name), to.at(toName));
  }

  /** Removes an entry of any kind; a folder with all it holds. Links are removed, not followed. */
  remove(name: string): void {
    const stat = this.lstat(name);
    if (!stat) return;
    if (stat.isDirectory()) {
      try {
        this.withSubdir(name, {}, (dir) => {
          for (const entry of dir.list()) dir.remove(entry);
        });
      } catch (err) {
        if (!(err instanceof UnsafeEntryError)) throw err;
        // Swapped between the lstat and the open: unlink whatever is there now.
      }
      try {
        fs.rmdirSync(this.at(name));
        return;
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

  /** lchown of one entry: a link's own owner changes, never its target's. */
  chown(name: string, uid: number, gid: number): void {
    fs.lchownSync(this.at(name), uid, gid);
  }

  /** Hands this folder and everything in it to uid:gid, skipping what already belongs to them. */
  chownTree(uid: number, gid: number): void {
    for (const entry of this.list()) {
      const stat = this.lstat(entry);
      if (!stat) continue;
      if (stat.uid !== uid || stat.gid !== gid) this.chown(entry, uid, gid);
      if (!stat.isDirectory()) continue;
      try {
        this.withSubdir(entry, {}, (dir) => dir.chownTree(uid, gid));
      } catch (err) {
        if (!(err instanceof UnsafeEntryError)) throw err;
      }
    }
  }

  stat(): fs.Stats {
    return fs.fstatSync(this.fd);
  }

  /** The open folder's own owner and mode, set through the handle. */
  chownSelf(uid: number, gid: number, mode?: number): void {
    fs.fchownSync(this.fd, uid, gid);
    if (mode !== undefined) fs.fchmodSync(this.fd, mode);
  }
}

/** Opens host-owned `root`, then each segment below it link-safely; runs `fn` on the last. */
export function withSafeDir<T>(
  root: string,
  segments: string[],
  options: SubdirOptions,
  fn: (dir: SafeDir) => T,
): T {
  const opened: SafeDir[] = [SafeDir.open(root, { create: options.create ?? false })];
  try {
    for (const segment of segments) opened.push(opened[opened.length - 1]!.subdir(segment, options));
    return fn(opened[opened.length - 1]!);
  } finally {
    for (const dir of opened.reverse()) dir.close();
  }
}
