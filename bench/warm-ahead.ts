import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { RuntimeKind } from '../src/config.js';
import { WARM_AHEAD_DEFAULTS } from '../src/warm-ahead.js';
import { onceTask } from '../test/helpers/once-task.js';
import { observeSpawns, startBenchHost, sleep, until } from './bench-host.js';

export interface WarmSamples {
  /** Typing, 2 s later the message: accepted → the model request carrying it (ms). */
  typing: number[];
  /** A `once` task: due time → the model request carrying its prompt (ms). */
  task: number[];
  /** RSS of one warm sandbox waiting for its message, all its processes (MB). */
  rss: number[];
}

const CHAT = 'local:main';
const TYPING_LEAD_MS = 2000;

/** Sum of VmRSS over a process and its descendants, as /proc shows them (bytes). */
function treeRss(root: number): number {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  for (const pids = [root]; pids.length > 0;) {
    const pid = pids.pop()!;
    pids.push(...(children.get(pid) ?? []));
    const kb = /^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    total += Number(kb ?? 0) * 1024;
  }
  return total;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Memory of a sandbox (bytes): docker's own figure for its container, else its process tree. */
async function sandboxRss(kind: RuntimeKind, name: string, pid: number): Promise<number> {
  if (kind !== 'docker' && kind !== 'podman') return treeRss(pid);
  const { stdout } = await promisify(execFile)(kind, [
    'stats',
    '--no-stream',
    '--format',
    '{{.MemUsage}}',
    name,
  ]);
  const [, value, unit] = /^([\d.]+)\s*([KMG]?i?B)/.exec(stdout.trim()) ?? [];
  if (!value || !unit || !(unit in UNITS)) throw new Error(`unexpected ${kind} stats: ${stdout.trim()}`);
  return Number(value) * UNITS[unit]!;
}

/**
 * Warm-ahead through the real host, runtime, agent-runner and SDK, the mock answering at once:
 * a typing signal starts the group's sandbox and its message arrives 2 s later; a task's sandbox
 * starts before its due time and gets its prompt at that time. The first of each is a warm-up.
 */
export async function measureWarmAhead(
  kind: RuntimeKind,
  runs: { typing: number; tasks: number },
  progress: (line: string) => void,
): Promise<WarmSamples> {
  let last = { name: '', pid: 0 };
  const host = await startBenchHost({
    runtime: kind,
    warmAhead: { ...WARM_AHEAD_DEFAULTS, enabled: true },
    wrapRuntime: (runtime) =>
      observeSpawns(runtime, (spec, child) => (last = { name: spec.name, pid: child.pid ?? 0 })),
  });
  const { app, checkpoints } = host;
  const samples: WarmSamples = { typing: [], task: [], rss: [] };
  const closeSandbox = async () => {
    app.queue.closeStdin(CHAT);
    await until('the sandbox has exited', () => !app.queue.isActive(CHAT));
  };
  try {
    for (let i = 0; i <= runs.typing; i++) {
      app.warm.onTyping(CHAT);
      if (!app.queue.isWarm(CHAT)) throw new Error('the typing signal started no warm sandbox');
      await sleep(TYPING_LEAD_MS);
      if (i > 0) samples.rss.push((await sandboxRss(kind, last.name, last.pid)) / 1e6);
      const marker = `bm-y${i}`;
      await host.post(CHAT, `hello ${marker}`);
      const accepted = await checkpoints.wait('accepted', marker);
      const model = await checkpoints.wait('model', marker);
      await checkpoints.wait('delivered', marker);
      if (i > 0) samples.typing.push(model - accepted);
      await closeSandbox();
    }
    progress(`${kind}: ${runs.typing} typing-warmed messages`);

    for (let i = 0; i <= runs.tasks; i++) {
      const id = `bm-k${i}`;
      const due = Date.now() + WARM_AHEAD_DEFAULTS.taskLeadMs + 1000;
      const dueAt = performance.now() + (due - Date.now());
      app.store.tasks.create(onceTask(id, 'main', `benchmark task ${id}`, due));
      app.scheduler.reschedule();
      await until('the task sandbox is warm', () => app.queue.isWarm(CHAT), 10_000);
      const model = await checkpoints.wait('model', id);
      if (model < dueAt)
        throw new Error(`${id} reached the model ${Math.round(dueAt - model)} ms before its due time`);
      await checkpoints.wait('delivered', id);
      if (i > 0) samples.task.push(model - dueAt);
      await closeSandbox();
    }
    progress(`${kind}: ${runs.tasks} warm-started tasks`);
  } finally {
    await host.stop();
  }
  return samples;
}
