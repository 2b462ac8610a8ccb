import crypto from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config.js';
import { SafeDir, withSafeDir } from '../safe-fs.js';

/**
 * The host-to-agent part of a group's IPC: data/ipc/<folder>/to-agent/, host-owned and mounted
 * read-only at /workspace/inbox. Follow-ups (input/<ms>-<rand>.json), the `_close` sentinel, the
 * task and group snapshots and media all go here. No agent can write or rename anything in it, and
 * the agent-runner remembers what it has read instead of deleting files.
 */

export const TO_AGENT = 'to-agent';
export const FROM_AGENT = 'from-agent';
export const INPUT_DIR = 'input';
export const MEDIA_DIR = 'media';
export const CLOSE_SENTINEL = '_close';

/** Runs `fn` in data/ipc/<folder>/to-agent[/<sub>], creating what is missing. */
export function inToAgent<T>(
  config: Pick<Config, 'ipcDir'>,
  folder: string,
  sub: string[],
  fn: (dir: SafeDir) => T,
): T {
  return withSafeDir(config.ipcDir, [folder, TO_AGENT, ...sub], { create: true, replace: true }, fn);
}

/** Pipes a follow-up into the group's running sandbox; returns the file's name. */
export function writeInput(config: Pick<Config, 'ipcDir'>, folder: string, text: string): string {
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}.json`;
  inToAgent(config, folder, [INPUT_DIR], (dir) =>
    dir.writeAtomic(name, JSON.stringify({ type: 'message', text })),
  );
  return name;
}

/** Asks the group's running sandbox to finish: the agent-runner exits when it sees this file. */
export function writeClose(config: Pick<Config, 'ipcDir'>, folder: string): void {
  inToAgent(config, folder, [INPUT_DIR], (dir) => dir.createFile(CLOSE_SENTINEL, ''));
}

/**
 * Empties input/ before a sandbox starts: follow-ups piped into an earlier sandbox that died
 * unread are already back in the prompt (the cursor was rolled back), and a stale `_close` would
 * end the new sandbox on arrival.
 */
export function clearInput(config: Pick<Config, 'ipcDir'>, folder: string): void {
  inToAgent(config, folder, [], (dir) => {
    dir.remove(INPUT_DIR);
    dir.subdir(INPUT_DIR, { create: true }).close();
  });
}

/** current_tasks.json, available_groups.json: replaced whole, so a reader never sees half. */
export function writeSnapshot(
  config: Pick<Config, 'ipcDir'>,
  folder: string,
  name: string,
  data: unknown,
): void {
  inToAgent(config, folder, [], (dir) => dir.writeAtomic(name, `${JSON.stringify(data, null, 2)}\n`));
}

/**
 * Makes a file the host downloaded into a host-private folder visible to the agent as
 * /workspace/inbox/media/<name>. Returns the name it got (unique in media/).
 */
export function publishMedia(
  config: Pick<Config, 'ipcDir'>,
  folder: string,
  privateFile: string,
  name: string,
): string {
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
