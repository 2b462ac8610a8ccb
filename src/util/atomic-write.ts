import crypto from 'node:crypto';
import fs from 'node:fs';

/** Host-owned folders only (agent-writable ones: SafeDir.writeAtomic). */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
