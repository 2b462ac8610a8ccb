import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** base64url of 32 random bytes is 43 characters; anything shorter or odder is not one of ours. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32,256}$/;

function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * Returns the local channel's token, creating the file (mode 0600) with a fresh random token when it
 * is missing or does not hold a usable token. The same token survives restarts so a bookmarked
 * page and a running `nanoclaw chat` keep working.
 */
export function loadOrCreateToken(tokenFile: string): string {
  fs.mkdirSync(path.dirname(tokenFile), { recursive: true, mode: 0o700 });
  const existing = readToken(tokenFile);
  if (existing) {
    // The token is a credential: keep it private even if someone loosened the mode.
    if ((fs.statSync(tokenFile).mode & 0o077) !== 0) fs.chmodSync(tokenFile, 0o600);
    return existing;
  }
  const token = newToken();
  const tmp = `${tokenFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  fs.renameSync(tmp, tokenFile);
  return token;
}

/** The token in the file, or undefined when the file is missing or unusable. */
export function readToken(tokenFile: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(tokenFile, 'utf8').trim();
  } catch {
    return undefined;
  }
  return TOKEN_PATTERN.test(text) ? text : undefined;
}

/** Compares in constant time; hashing first makes the lengths equal without leaking the real length. */
export function tokensMatch(expected: string, offered: string | undefined): boolean {
  if (offered === undefined) return false;
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(offered).digest();
  return crypto.timingSafeEqual(a, b);
}
