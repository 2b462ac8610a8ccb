import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { HOST_NODE_FLAGS } from '../src/cli/service.js';

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, 'idle-host.mjs');

/** One idle host in its own process: its RSS in bytes after settling. */
async function idleHostRss(groups: number, settleMs: number): Promise<number> {
  // With the Node flags `npm start` and the service give the host.
  const { stdout } = await run(
    process.execPath,
    [...HOST_NODE_FLAGS, CHILD, String(groups), String(settleMs)],
    {
      env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' },
      timeout: 60_000,
    },
  );
  const line = JSON.parse(stdout.trim().split('\n').at(-1)!) as { groups: number; rssBytes: number };
  if (line.groups !== groups) throw new Error(`idle host had ${line.groups} groups, not ${groups}`);
  return line.rssBytes;
}

/**
 * Seconds of quiet before sampling: V8 shrinks the heap it grew during start-up only after some
 * seconds without activity (about 8 s here), and an idle host is one that has been idle a while.
 */
const SETTLE_MS = 12_000;

/**
 * Host RSS at idle: `runs` separate production hosts (compiled dist/, no tsx), each with `groups`
 * registered groups and no traffic, `parallel` at a time. Returns MB (10^6 bytes).
 */
export async function measureIdleRss(groups: number, runs: number, parallel = 4): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < runs) {
      next++;
      samples.push((await idleHostRss(groups, SETTLE_MS)) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return samples;
}
