import crypto from 'node:crypto';
import type { Fingerprint } from './types.js';

/**
 * How the probe looks for the API key without the key ever entering the sandbox. The host sends,
 * per secret, its length, a 31-bit rolling hash and its SHA-256: the probe slides a window of that
 * length over every byte it reads, and only where the rolling hash matches does it compute the
 * SHA-256. 31 bits of a key of 100+ bits of entropy leave it as unguessable as before.
 *
 * Both functions run on the host (tests) and, as source text, inside the probe: they must stay
 * self-contained (no imports, no outside names but each other).
 */

export function polyHash(bytes: Uint8Array, start: number, len: number): number {
  let h = 0;
  for (let i = start; i < start + len; i++) h = (h * 257 + (bytes[i] ?? 0)) % 2147483647;
  return h;
}

/** Indexes (into `fps`) of the fingerprints whose secret occurs somewhere in `buf`. */
export function findFingerprints(
  buf: Uint8Array,
  fps: Fingerprint[],
  sha256: (bytes: Uint8Array) => string,
): number[] {
  const mod = 2147483647;
  const found: number[] = [];
  for (const len of new Set(fps.map((f) => f.len))) {
    if (len === 0 || buf.length < len) continue;
    let pow = 1; // 257^(len-1): the weight of the byte leaving the window
    for (let i = 1; i < len; i++) pow = (pow * 257) % mod;
    let h = polyHash(buf, 0, len);
    for (let i = 0; ; i++) {
      fps.forEach((fp, index) => {
        if (fp.len !== len || fp.roll !== h || found.includes(index)) return;
        if (sha256(buf.subarray(i, i + len)) === fp.sha256) found.push(index);
      });
      if (i + len >= buf.length) break;
      h = (h - (((buf[i] ?? 0) * pow) % mod) + mod) % mod;
      h = (h * 257 + (buf[i + len] ?? 0)) % mod;
    }
  }
  return found;
}

export function sha256Hex(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

export function fingerprint(secret: string): Fingerprint {
  const bytes = Buffer.from(secret, 'utf8');
  return { len: bytes.length, roll: polyHash(bytes, 0, bytes.length), sha256: sha256Hex(bytes) };
}
