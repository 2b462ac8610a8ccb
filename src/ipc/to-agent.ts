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

export function writeInput(config: Ipc, folder: string, text: string): string {
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}.json`;
  inToAgent(config, folder, [INPUT_DIR], (dir) =>
    dir.writeAtomic(name, JSON.stringify({ type: 'message', text })),
  );
  return name;
}

export const writeClose = (config: Ipc, folder: string) =>
  inToAgent(config, folder, [INPUT_DIR], (dir) => dir.createFile(CLOSE_SENTINEL, ''));

/** Before a sandbox starts: unread follow-ups are in the prompt; a stale `_close` would end it. */
export const clearInput = (config: Ipc, folder: string) =>
  inToAgent(config, folder, [INPUT_DIR], (dir) => dir.list().forEach((name) => dir.remove(name)));

/** Answers older than 5 minutes are pruned. */
export const writeResponse = (config: Ipc, folder: string, requestId: string, response: IpcResponse) =>
  inToAgent(config, folder, [RESPONSES_DIR], (dir) => {
    for (const name of dir.list())
      if ((dir.lstat(name)?.mtimeMs ?? Infinity) < Date.now() - 300_000) dir.remove(name);
    dir.writeAtomic(`${requestId}.json`, JSON.stringify(response));
  });

export const writeSnapshot = (config: Ipc, folder: string, name: string, data: unknown) =>
  inToAgent(config, folder, [], (dir) => dir.writeAtomic(name, `${JSON.stringify(data, null, 2)}\n`));

/** Moves a host-private file to media/ under a unique name. */
export const publishMedia = (config: Ipc, folder: string, privateFile: string, name: string) =>
  withSafeDir(path.dirname(privateFile), [], {}, (from) =>
    inToAgent(config, folder, [MEDIA_DIR], (media) => {
      const { name: stem, ext } = path.parse(name);
      let target = name;
      for (let n = 1; media.lstat(target); n++) target = `${stem}-${n}${ext}`;
      from.moveTo(path.basename(privateFile), media, target);
      return target;
    }),
  );
