import crypto from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config.js';
import { CLOSE_SENTINEL, RESPONSES_DIR, type IpcResponse } from '../contract/ipc.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';

// data/ipc/<folder>/to-agent/: host-owned, mounted read-only at /workspace/inbox.

export const TO_AGENT = 'to-agent';
export const FROM_AGENT = 'from-agent';
export const INPUT_DIR = 'input';
export const MEDIA_DIR = 'media';
type Ipc = Pick<Config, 'ipcDir'>;

export const inToAgent = <T>(config: Ipc, folder: string, sub: string[], fn: (dir: SafeDir) => T): T =>
  withSafeDir(config.ipcDir, [folder, TO_AGENT, ...sub], { create: true, replace: true }, fn);

const unique = () => `${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;

export function writeInput(config: Ipc, folder: string, text: string): string {
  const name = `${unique()}.json`;
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
  inToAgent(config, folder, [INPUT_DIR], (dir) => dir.list().forEach((name) => dir.remove(name)));
}

/** The runner waits seconds for an answer; older ones are pruned at each write. */
export function writeResponse(config: Ipc, folder: string, requestId: string, response: IpcResponse): void {
  inToAgent(config, folder, [RESPONSES_DIR], (dir) => {
    const old = Date.now() - 5 * 60_000;
    for (const name of dir.list()) if ((dir.lstat(name)?.mtimeMs ?? Infinity) < old) dir.remove(name);
    dir.writeAtomic(`${requestId}.json`, JSON.stringify(response));
  });
}

export function writeSnapshot(config: Ipc, folder: string, name: string, data: unknown): void {
  inToAgent(config, folder, [], (dir) => dir.writeAtomic(name, `${JSON.stringify(data, null, 2)}\n`));
}

/** Moves a host-private file to the inbox's media/; returns its (unique) name there. */
export function publishMedia(config: Ipc, folder: string, privateFile: string, name: string): string {
  return withSafeDir(path.dirname(privateFile), [], {}, (from) =>
    inToAgent(config, folder, [MEDIA_DIR], (media) => {
      let target = name;
      for (let n = 1; media.lstat(target); n++) target = `${path.parse(name).name}-${n}${path.extname(name)}`;
      from.moveTo(path.basename(privateFile), media, target);
      return target;
    }),
  );
}
