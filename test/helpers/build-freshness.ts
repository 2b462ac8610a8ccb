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

/** The build output is missing or older than one of its sources. */
export function isStale(built: string, sourcesDir: string): boolean {
  return !fs.existsSync(built) || fs.statSync(built).mtimeMs < newestMtime(sourcesDir);
}
