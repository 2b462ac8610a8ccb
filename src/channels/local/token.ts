import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../util/atomic-write.js';

export function loadOrCreateToken(file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const existing = readToken(file);
  if (existing) return (fs.chmodSync(file, 0o600), existing);
  const token = crypto.randomBytes(32).toString('base64url');
  writeFileAtomic(file, `${token}\n`, 0o600);
  return token;
}

export const readToken = (file: string) =>
  fs.existsSync(file) ? /^[\w-]{32,256}$/.exec(fs.readFileSync(file, 'utf8').trim())?.[0] : undefined;

/** Constant time; hashing makes the lengths equal. */
export function tokensMatch(expected: string, offered: string | undefined): boolean {
  const hash = (s: string) => crypto.createHash('sha256').update(s).digest();
  return offered !== undefined && crypto.timingSafeEqual(hash(expected), hash(offered));
}
