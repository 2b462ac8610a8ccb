import type { RuntimeKind } from '../src/config.js';
import { registerGroup } from '../src/groups.js';
import { onceTask } from '../test/helpers/once-task.js';
import { observeSpawns, startBenchHost, sleep, until } from './bench-host.js';

const GROUPS = 4;

/**
 * Scheduled-task lateness through the real scheduler and group queue: `once` tasks fall due at
 * known times, spread over a few groups and bunched so some share a due time; the lateness of one
 * is the moment its run starts (the runner is called) minus its due time. The runner answers at
 * once, so this is the host's own part: timer precision, claiming, queueing.
 */
export async function measureSchedulerLateness(tasks: number): Promise<number[]> {
  const started = new Map<string, number>();
  const host = await startBenchHost({ behaviour: () => ({ status: 'success', result: null }) });
  try {
    const { app } = host;
    // A run starts when the host calls the sandbox runner: timer precision, claiming, queueing.
    const run = app.runner.run.bind(app.runner);
    app.runner.run = (group, input, hooks) => {
      const id = /bm-t\d+/.exec(input.prompt)?.[0];
      if (id && !started.has(id)) started.set(id, Date.now());
      return run(group, input, hooks);
    };
    for (let g = 0; g < GROUPS; g++)
      registerGroup(app.store, app.config, { jid: `local:g${g}`, name: `g${g}`, folder: `g${g}` });
    const dueAt = new Map<string, number>();
    const base = Date.now() + 500;
    for (let i = 0; i < tasks; i++) {
      const id = `bm-t${i}`;
      // Pairs share a due time; due times are 137 ms apart, off any round timer boundary.
      const due = base + Math.floor(i / 2) * 137;
      dueAt.set(id, due);
      const group = i % GROUPS;
      app.store.tasks.create(onceTask(id, `g${group}`, `benchmark task ${id}`, due));
    }
    app.scheduler.reschedule();
    const last = Math.max(...dueAt.values());
    await sleep(Math.max(0, last - Date.now()));
    await until('every task has started', () => started.size === tasks, 30_000);
    return [...dueAt].map(([id, due]) => started.get(id)! - due);
  } finally {
    await host.stop();
  }
}

/**
 * Lateness when the task's group has a sandbox idling after an answer (the common case for an
 * active chat): the idle sandbox is closed at once and the task's own sandbox starts. One sample
 * is the moment the task's sandbox is spawned minus its due time.
 */
export async function measureLatenessWhileIdle(kind: RuntimeKind, runs: number): Promise<number[]> {
  const spawns: number[] = [];
  const host = await startBenchHost({
    runtime: kind,
    wrapRuntime: (runtime) => observeSpawns(runtime, (_spec, _child, at) => spawns.push(at)),
  });
  const { app, checkpoints } = host;
  const chat = 'local:main';
  const samples: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      await host.post(chat, `keep me company bm-i${i}`);
      await checkpoints.wait('delivered', `bm-i${i}`);
      await sleep(100); // the sandbox now idles, waiting for a follow-up
      const id = `bm-t${i}`;
      const due = Date.now() + 300;
      app.store.tasks.create(onceTask(id, 'main', `benchmark task ${id}`, due));
      app.scheduler.reschedule();
      await checkpoints.wait('delivered', id);
      const started = spawns.find((at) => at >= due);
      if (started === undefined) throw new Error(`no sandbox was started for ${id}`);
      samples.push(started - due);
      // Task sandboxes close 10 s after their first result; no need to wait that out here.
      app.queue.closeStdin(chat);
      await until('the task sandbox has exited', () => !app.queue.isActive(chat));
    }
  } finally {
    await host.stop();
  }
  return samples;
}
