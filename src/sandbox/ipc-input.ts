import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { IpcInput } from '../ipc/schemas.js';

export const CLOSE_SENTINEL = '_close';

/**
 * The input directory of a group's IPC dir, checked to be a real directory: the agent can replace
 * it with a symlink, and the host must never follow one with its own (possibly root) rights.
 */
function inputDir(config: Config, folder: string): string {
  const dir = path.join(config.ipcDir, folder, 'input');
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) fs.rmSync(dir, { force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Asks the group's running sandbox to finish: the agent-runner exits when it sees this file. */
export function writeCloseSentinel(config: Config, folder: string): void {
  const file = path.join(inputDir(config, folder), CLOSE_SENTINEL);
  try {
    fs.writeFileSync(file, '', { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Removes a sentinel left by an earlier run, so a new sandbox does not close on arrival. */
export function clearCloseSentinel(config: Config, folder: string): void {
  fs.rmSync(path.join(config.ipcDir, folder, 'input', CLOSE_SENTINEL), { force: true });
}

/**
 * Pipes a follow-up message into the group's running sandbox. Written to a temp name and renamed,
 * so the agent never reads half a file. Returns the path of the new file.
 */
export function writeIpcInput(config: Config, folder: string, text: string): string {
  const dir = inputDir(config, folder);
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}.json`;
  const file = path.join(dir, name);
  const tmp = `${file}.tmp`;
  const payload: IpcInput = { type: 'message', text };
  // wx: never write through something already sitting at the temp name.
  fs.writeFileSync(tmp, JSON.stringify(payload), { flag: 'wx', mode: 0o644 });
  fs.renameSync(tmp, file);
  return file;
}
