import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../util/atomic-write.js';

/** Kept across restarts, so a bookmarked page and a running `nanoclaw chat` keep working. */
export function loadOrCreateToken(tokenFile: string): string {
  fs.mkdirSync(path.dirname(tokenFile), { recursive: true, mode: 0o700 });
  const existing = readToken(tokenFile);
  if (existing) {
    // A credential: kept private even if someone loosened the mode.
    if ((fs.statSync(tokenFile).mode & 0o077) !== 0) fs.chmodSync(tokenFile, 0o600);
    return existing;
  }
  const token = crypto.randomBytes(32).toString('base64url');
  writeFileAtomic(tokenFile, `${token}\n`, 0o600);
  return token;
}

/** Ours are base64url of 32 random bytes; anything else is not a usable token. */
export function readToken(tokenFile: string): string | undefined {
  try {
    const text = fs.readFileSync(tokenFile, 'utf8').trim();
    return /^[A-Za-z0-9_-]{32,256}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Constant time; hashing first makes the lengths equal without leaking the real one. */
export function tokensMatch(expected: string, offered: string | undefined): boolean {
  const hash = (s: string) => crypto.createHash('sha256').update(s).digest();
  return offered !== undefined && crypto.timingSafeEqual(hash(expected), hash(offered));
}
