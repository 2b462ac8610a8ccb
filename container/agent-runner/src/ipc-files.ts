import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** `<ms>-<rand>`: sorts by time, unique across concurrent writers. */
export function timestampedId(now = Date.now()): string {
  return `${now}-${crypto.randomBytes(4).toString('hex')}`;
}

/**
 * Writes JSON atomically: the host only picks up `*.json`, and rename is atomic, so it never
 * reads a half-written file.
 */
export function writeIpcFile(dir: string, data: object): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `${timestampedId()}.json`;
  const file = path.join(dir, name);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data));
  fs.renameSync(tmp, file);
  return file;
}
