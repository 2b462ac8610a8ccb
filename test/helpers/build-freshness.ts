import fs from 'node:fs';

/** Newest modification time of any file below `dir`. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * The build output is missing or older than one of its sources. The agent-runner's sources are its
 * src/ and the host's src/contract, which its build copies in.
 */
export function isStale(built: string, ...sourceDirs: string[]): boolean {
  return !fs.existsSync(built) || fs.statSync(built).mtimeMs < Math.max(...sourceDirs.map(newestMtime));
}
