import crypto from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config.js';
import { CLOSE_SENTINEL, RESPONSES_DIR, type IpcResponse } from '../contract/ipc.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';

/** data/ipc/<folder>/to-agent/: host-owned, mounted read-only at /workspace/inbox. */

export const TO_AGENT = 'to-agent';
export const FROM_AGENT = 'from-agent';
export const INPUT_DIR = 'input';
export const MEDIA_DIR = 'media';
type Ipc = Pick<Config, 'ipcDir'>;

export function inToAgent<T>(config: Ipc, folder: string, sub: string[], fn: (dir: SafeDir) => T): T {
  return withSafeDir(config.ipcDir, [folder, TO_AGENT, ...sub], { create: true, replace: true }, fn);
}

/** Returns the file's name. */
export function writeInput(config: Ipc, folder: string, text: string): string {
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}.json`;
  inToAgent(config, folder, [INPUT_DIR], (dir) =>
    dir.writeAtomic(name, JSON.stringify({ type: 'message', text })),
  );
  return name;
}

export function writeClose(config: Ipc, folder: string): void {
  inToAgent(config, folder, [INPUT_DIR], (dir) => dir.createFile(CLOSE_SENTINEL, ''));
}

/** Before a sandbox starts: unread follow-ups are back in the prompt, a stale `_close` would end it. */
export function clearInput(config: Ipc, folder: string): void {
  inToAgent(config, folder, [INPUT_DIR], (dir) => {
    for (const name of dir.list()) dir.remove(name);
  });
}

/** Answers live long enough for the runner's wait (seconds); older ones are pruned at each write. */
const RESPONSE_TTL_MS = 5 * 60_000;

/** Created here on first use: the runner polls the folder, so it may appear mid-run. */
export function writeResponse(config: Ipc, folder: string, requestId: string, response: IpcResponse): void {
  inToAgent(config, folder, [RESPONSES_DIR], (dir) => {
    const old = Date.now() - RESPONSE_TTL_MS;
    for (const name of dir.list()) if ((dir.lstat(name)?.mtimeMs ?? Infinity) < old) dir.remove(name);
    dir.writeAtomic(`${requestId}.json`, JSON.stringify(response));
  });
}

export function writeSnapshot(config: Ipc, folder: string, name: string, data: unknown): void {
  inToAgent(config, folder, [], (dir) => dir.writeAtomic(name, `${JSON.stringify(data, null, 2)}\n`));
}

/** Moves a host-private file to /workspace/inbox/media/; returns its name there (unique). */
export function publishMedia(config: Ipc, folder: string, privateFile: string, name: string): string {
  const from = SafeDir.open(path.dirname(privateFile));
  try {
    return inToAgent(config, folder, [MEDIA_DIR], (media) => {
      let target = name;
      for (let n = 1; media.lstat(target); n++) target = `${path.parse(name).name}-${n}${path.extname(name)}`;
      from.moveTo(path.basename(privateFile), media, target);
      return target;
    });
  } finally {
    from.close();
  }
}
