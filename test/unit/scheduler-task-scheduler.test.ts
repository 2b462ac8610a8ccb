import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/db/store.js';
import { pauseTask, resumeTask } from '../../src/scheduler/task-actions.js';
import {
  TaskScheduler,
  type SchedulerDeps,
  type TaskRunOutcome,
} from '../../src/scheduler/task-scheduler.js';
import type { ScheduledTask } from '../../src/types.js';

const START = new Date('2026-11-23T10:00:00.000Z');
const MIN = 60_000;

let dir: string;
let store: Store;
let scheduler: TaskScheduler | undefined;

beforeEach(() => {
  vi.useFakeTimers({ now: START });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-scheduler-'));
  store = openStore(path.join(dir, 'messages.db'));
});

afterEach(() => {
  scheduler?.stop();
  scheduler = undefined;
  store.close();
  vi.useRealTimers();
  fs.rmSync(dir, { recursive: true, force: true });
});

function iso(msFromStart: number): string {
  return new Date(START.getTime() + msFromStart).toISOString();
}

function addTask(partial: Partial<ScheduledTask> & Pick<ScheduledTask, 'id'>): ScheduledTask {
  const task: ScheduledTask = {
    groupFolder: 'family',
    chatJid: 'family@g.us',
    prompt: `prompt of ${partial.id}`,
    scheduleType: 'once',
    scheduleValue: '2026-11-23T11:00:00',
    contextMode: 'isolated',
    nextRun: iso(5 * MIN),
    lastRun: null,
    lastResult: null,
    status: 'active',
    createdAt: new Date().toISOString(),
    ...partial,
  };
  store.tasks.create(task);
  return task;
}

interface QueuedJob {
  chatJid: string;
  taskId: string;
  run: () => Promise<void>;
}

/** A queue that holds jobs until the test runs them, like a busy group queue. */
function heldQueue() {
  const jobs: QueuedJob[] = [];
  return {
    jobs,
    enqueueTask: (chatJid: string, taskId: string, run: () => Promise<void>) =>
      jobs.push({ chatJid, taskId, run }),
  };
}

/** A queue that starts every job at once. */
function eagerQueue() {
  const started: string[] = [];
  return {
    started,
    enqueueTask: (_chatJid: string, taskId: string, run: () => Promise<void>) => {
      started.push(taskId);
      void run();
    },
  };
}

function startScheduler(overrides: Partial<SchedulerDeps> = {}) {
  const runs: Array<{ id: string; at: string }> = [];
  const changed: string[] = [];
  const deps: SchedulerDeps = {
    store,
    config: { timezone: 'Europe/Berlin', safetyPollMs: 5_000 },
    queue: eagerQueue(),
    runTask: async (task): Promise<TaskRunOutcome> => {
      runs.push({ id: task.id, at: new Date().toISOString() });
      return { status: 'success', result: `result of ${task.id}` };
    },
    onTasksChanged: (folder) => changed.push(folder),
    ...overrides,
  };
  scheduler = new TaskScheduler(deps);
  scheduler.start();
  return { runs, changed, scheduler };
}

describe('TaskScheduler', () => {
  it('arms a timer for the earliest task and runs it at its due time, not before', async () => {
    addTask({ id: 'later', nextRun: iso(10 * MIN) });
    addTask({ id: 'first', nextRun: iso(5 * MIN) });
    const { runs } = startScheduler();

    await vi.advanceTimersByTimeAsync(5 * MIN - 1);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toEqual([{ id: 'first', at: iso(5 * MIN) }]);
    await vi.advanceTimersByTimeAsync(5 * MIN);
    expect(runs.map((r) => r.id)).toEqual(['first', 'later']);
    expect(runs[1]!.at).toBe(iso(10 * MIN));
  });

  it('hands the task to the queue under its chat and id', async () => {
    addTask({ id: 't1', nextRun: iso(MIN) });
    const queue = heldQueue();
    startScheduler({ queue });
    await vi.advanceTimersByTimeAsync(MIN);
    expect(queue.jobs.map(({ chatJid, taskId }) => ({ chatJid, taskId }))).toEqual([
      { chatJid: 'family@g.us', taskId: 't1' },
    ]);
  });

  it('repeats an interval task and records each run', async () => {
    addTask({ id: 'every', scheduleType: 'interval', scheduleValue: String(2 * MIN), nextRun: iso(2 * MIN) });
    const { runs } = startScheduler();

    await vi.advanceTimersByTimeAsync(6 * MIN);
    expect(runs.map((r) => r.at)).toEqual([iso(2 * MIN), iso(4 * MIN), iso(6 * MIN)]);
    const task = store.tasks.byId('every')!;
    expect(task.status).toBe('active');
    expect(task.nextRun).toBe(iso(8 * MIN));
    expect(task.lastRun).toBe(iso(6 * MIN));
    expect(task.lastResult).toBe('result of every');
    const logs = store.tasks.runLogs('every');
    expect(logs).toHaveLength(3);
    expect(logs.every((log) => log.status === 'success' && log.result === 'result of every')).toBe(true);
  });

  it('runs a cron task at the local time in the configured timezone', async () => {
    // 11:30 in Berlin (CET) is 10:30 UTC: 30 minutes after START.
    addTask({ id: 'cron', scheduleType: 'cron', scheduleValue: '30 11 * * *', nextRun: iso(30 * MIN) });
    const { runs } = startScheduler();
    await vi.advanceTimersByTimeAsync(30 * MIN);
    expect(runs.map((r) => r.at)).toEqual([iso(30 * MIN)]);
    expect(store.tasks.byId('cron')!.nextRun).toBe('2026-11-24T10:30:00.000Z');
  });

  it('completes a once task after its run', async () => {
    addTask({ id: 'once', nextRun: iso(MIN) });
    const { runs, changed } = startScheduler();
    await vi.advanceTimersByTimeAsync(MIN);
    expect(runs).toHaveLength(1);
    const task = store.tasks.byId('once')!;
    expect(task).toMatchObject({ status: 'completed', nextRun: null, lastRun: iso(MIN) });
    expect(changed).toContain('family');
    await vi.advanceTimersByTimeAsync(60 * MIN);
    expect(runs).toHaveLength(1);
  });

  it('persists the next run before the task runs', async () => {
    addTask({ id: 'interval', scheduleType: 'interval', scheduleValue: String(10 * MIN), nextRun: iso(MIN) });
    addTask({ id: 'once', nextRun: iso(MIN) });
    const queue = heldQueue();
    startScheduler({ queue });
    await vi.advanceTimersByTimeAsync(MIN);
    expect(queue.jobs.map((j) => j.taskId).sort()).toEqual(['interval', 'once']);
    // Nothing has run yet, but the claim is already on disk.
    expect(store.tasks.byId('interval')!.nextRun).toBe(iso(11 * MIN));
    expect(store.tasks.byId('once')!).toMatchObject({ nextRun: null, status: 'active', lastRun: null });
  });

  it('never enqueues a task that is still queued or running; a missed run happens once afterwards', async () => {
    addTask({ id: 'slow', scheduleType: 'interval', scheduleValue: String(MIN), nextRun: iso(MIN) });
    const queue = heldQueue();
    const { runs } = startScheduler({ queue });

    await vi.advanceTimersByTimeAsync(MIN);
    expect(queue.jobs).toHaveLength(1);
    // Due again twice while the first job waits in the queue: still one job.
    await vi.advanceTimersByTimeAsync(3 * MIN);
    scheduler!.reschedule();
    expect(queue.jobs).toHaveLength(1);
    expect([...scheduler!.inFlight]).toEqual(['slow']);

    await queue.jobs[0]!.run();
    expect(runs).toHaveLength(1);
    // Overdue on completion: claimed once more straight away, not once per missed minute.
    await vi.advanceTimersByTimeAsync(0);
    expect(queue.jobs).toHaveLength(2);
    expect(store.tasks.byId('slow')!.nextRun).toBe(iso(5 * MIN));
  });

  it('runs a task missed while the host was down once on start, then counts from now', async () => {
    addTask({ id: 'missed', scheduleType: 'interval', scheduleValue: String(MIN), nextRun: iso(-180 * MIN) });
    addTask({ id: 'missed-once', nextRun: iso(-60 * MIN) });
    const { runs } = startScheduler();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs.map((r) => r.id).sort()).toEqual(['missed', 'missed-once']);
    expect(store.tasks.byId('missed')!.nextRun).toBe(iso(MIN));
    expect(store.tasks.byId('missed-once')!.status).toBe('completed');
    await vi.advanceTimersByTimeAsync(MIN - 1);
    expect(runs).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(3);
  });

  it('skips paused tasks and runs a resumed one at its fresh next run', async () => {
    addTask({ id: 'p', scheduleType: 'interval', scheduleValue: String(10 * MIN), nextRun: iso(MIN) });
    pauseTask(store, 'p');
    const { runs } = startScheduler();
    await vi.advanceTimersByTimeAsync(30 * MIN);
    expect(runs).toEqual([]);

    expect(resumeTask(store, 'p', 'Europe/Berlin', new Date()).ok).toBe(true);
    scheduler!.reschedule();
    expect(store.tasks.byId('p')!.nextRun).toBe(iso(40 * MIN));
    await vi.advanceTimersByTimeAsync(10 * MIN - 1);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toEqual([{ id: 'p', at: iso(40 * MIN) }]);
  });

  it('runs a resumed once task whose time has passed at once', async () => {
    addTask({ id: 'o', nextRun: iso(MIN) });
    pauseTask(store, 'o');
    const { runs } = startScheduler();
    await vi.advanceTimersByTimeAsync(5 * MIN);
    expect(runs).toEqual([]);
    resumeTask(store, 'o', 'Europe/Berlin', new Date());
    scheduler!.reschedule();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toEqual([{ id: 'o', at: iso(5 * MIN) }]);
  });

  it('records failures as an error run log and an Error last_result', async () => {
    addTask({ id: 'throws', scheduleType: 'interval', scheduleValue: String(MIN), nextRun: iso(MIN) });
    addTask({ id: 'fails', nextRun: iso(MIN) });
    startScheduler({
      runTask: async (task) => {
        if (task.id === 'throws') throw new Error('runtime down');
        return { status: 'error', result: null, error: 'budget spent' };
      },
    });
    await vi.advanceTimersByTimeAsync(MIN);
    expect(store.tasks.byId('throws')).toMatchObject({ lastResult: 'Error: runtime down', status: 'active' });
    expect(store.tasks.runLogs('throws')).toEqual([
      {
        taskId: 'throws',
        runAt: iso(MIN),
        durationMs: 0,
        status: 'error',
        result: null,
        error: 'runtime down',
      },
    ]);
    expect(store.tasks.byId('fails')).toMatchObject({
      lastResult: 'Error: budget spent',
      status: 'completed',
    });
    expect(store.tasks.runLogs('fails')[0]).toMatchObject({ status: 'error', error: 'budget spent' });
  });

  it('keeps the run duration and does not resurrect a task cancelled while it ran', async () => {
    addTask({ id: 'long', nextRun: iso(MIN) });
    addTask({ id: 'gone', nextRun: iso(MIN) });
    startScheduler({
      runTask: async (task) => {
        await new Promise((resolve) => setTimeout(resolve, 5_000));
        if (task.id === 'gone') store.tasks.delete('gone');
        return { status: 'success', result: 'ok' };
      },
    });
    await vi.advanceTimersByTimeAsync(MIN + 5_000);
    expect(store.tasks.runLogs('long')[0]).toMatchObject({ durationMs: 5_000, runAt: iso(MIN) });
    expect(store.tasks.byId('gone')).toBeUndefined();
    expect(store.tasks.runLogs('gone')).toEqual([]);
  });

  it('skips a run whose task was paused or cancelled while it waited in the queue', async () => {
    addTask({
      id: 'paused-in-queue',
      scheduleType: 'interval',
      scheduleValue: String(MIN),
      nextRun: iso(MIN),
    });
    addTask({ id: 'cancelled-in-queue', nextRun: iso(MIN) });
    addTask({ id: 'updated-in-queue', nextRun: iso(MIN) });
    const queue = heldQueue();
    const prompts: string[] = [];
    startScheduler({
      queue,
      runTask: async (task) => {
        prompts.push(task.prompt);
        return { status: 'success', result: 'ok' };
      },
    });
    await vi.advanceTimersByTimeAsync(MIN);
    expect(queue.jobs).toHaveLength(3);
    pauseTask(store, 'paused-in-queue');
    store.tasks.delete('cancelled-in-queue');
    store.tasks.update('updated-in-queue', { prompt: 'the new prompt' });
    for (const job of queue.jobs) await job.run();

    expect(prompts).toEqual(['the new prompt']);
    expect(store.tasks.runLogs('paused-in-queue')).toEqual([]);
    expect(store.tasks.byId('paused-in-queue')!.status).toBe('paused');
    expect([...scheduler!.inFlight]).toEqual([]);
  });

  it('closes a once task that a stopped host had claimed but not finished', () => {
    addTask({ id: 'cut', nextRun: null });
    const queue = heldQueue();
    startScheduler({ queue });
    expect(queue.jobs).toEqual([]);
    expect(store.tasks.byId('cut')).toMatchObject({
      status: 'completed',
      lastResult: expect.stringMatching(/^Error: the host stopped/),
    });
    expect(store.tasks.runLogs('cut')[0]).toMatchObject({ status: 'error' });
  });

  it('picks up a task the CLI resumed in another process without a reschedule call', async () => {
    addTask({
      id: 'cli',
      scheduleType: 'interval',
      scheduleValue: String(60 * MIN),
      nextRun: iso(MIN),
      status: 'paused',
    });
    store.groups.upsert({
      jid: 'family@g.us',
      name: 'Family',
      folder: 'family',
      trigger: '@Andy',
      requiresTrigger: true,
      isMain: false,
      addedAt: START.toISOString(),
    });
    const { runs, changed } = startScheduler();
    const cli = openStore(path.join(dir, 'messages.db'));
    try {
      cli.tasks.update('cli', { status: 'active', nextRun: iso(0) });
    } finally {
      cli.close();
    }
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs.map((r) => r.id)).toEqual(['cli']);
    expect(changed).toContain('family');
  });

  it('runs a newly added task after reschedule()', async () => {
    const { runs } = startScheduler();
    addTask({ id: 'new', nextRun: iso(10_000) });
    scheduler!.reschedule();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toEqual([{ id: 'new', at: iso(10_000) }]);
  });

  it('waits longer than setTimeout allows by re-arming', async () => {
    const day = 24 * 60 * MIN;
    addTask({ id: 'far', nextRun: iso(30 * day) });
    const { runs } = startScheduler({
      config: { timezone: 'UTC', safetyPollMs: 20 * day },
    });
    await vi.advanceTimersByTimeAsync(30 * day - 1);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toEqual([{ id: 'far', at: iso(30 * day) }]);
  }, 10_000);

  it('pauses a task whose stored schedule is unusable instead of running it', async () => {
    addTask({ id: 'broken', scheduleType: 'cron', scheduleValue: 'not a cron', nextRun: iso(MIN) });
    const { runs } = startScheduler();
    await vi.advanceTimersByTimeAsync(MIN);
    expect(runs).toEqual([]);
    expect(store.tasks.byId('broken')!.status).toBe('paused');
  });

  it('stop() clears every timer and nothing runs afterwards', async () => {
    addTask({ id: 't', nextRun: iso(MIN) });
    const { runs } = startScheduler();
    expect(vi.getTimerCount()).toBe(2);
    scheduler!.stop();
    expect(vi.getTimerCount()).toBe(0);
    scheduler!.reschedule();
    await vi.advanceTimersByTimeAsync(10 * MIN);
    expect(runs).toEqual([]);
  });
});

describe('TaskScheduler warm-ahead', () => {
  function warm(leadMs = 5000) {
    const told: Array<{ id: string; at: string }> = [];
    const handed: string[] = [];
    const hook = {
      taskLeadMs: leadMs,
      soonDue: (task: ScheduledTask) => told.push({ id: task.id, at: new Date().toISOString() }),
      runTask: (task: ScheduledTask): Promise<TaskRunOutcome> | undefined => {
        if (task.id !== 'warmed') return undefined;
        handed.push(task.id);
        return Promise.resolve({ status: 'success', result: 'from the warm sandbox' });
      },
    };
    return { told, handed, hook };
  }

  it('tells warm-ahead the lead before each due time, once, and never claims early', async () => {
    addTask({ id: 'a', nextRun: iso(MIN) });
    addTask({ id: 'b', nextRun: iso(2 * MIN) });
    const w = warm();
    const { runs } = startScheduler({ warm: w.hook });
    await vi.advanceTimersByTimeAsync(MIN - 5001);
    expect(w.told).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(w.told).toEqual([{ id: 'a', at: iso(MIN - 5000) }]);
    expect(runs).toEqual([]);
    scheduler!.reschedule();
    await vi.advanceTimersByTimeAsync(4999);
    expect(w.told).toHaveLength(1);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toEqual([{ id: 'a', at: iso(MIN) }]);
    await vi.advanceTimersByTimeAsync(MIN);
    expect(w.told.map((t) => t.at)).toEqual([iso(MIN - 5000), iso(2 * MIN - 5000)]);
    expect(runs.map((r) => r.id)).toEqual(['a', 'b']);
  });

  it('does not warm a task already due at start; an interval task is warmed before each run', async () => {
    addTask({ id: 'overdue', nextRun: iso(-MIN) });
    addTask({ id: 'every', scheduleType: 'interval', scheduleValue: String(10 * MIN), nextRun: iso(MIN) });
    const w = warm();
    startScheduler({ warm: w.hook });
    await vi.advanceTimersByTimeAsync(11 * MIN);
    expect(w.told.map((t) => `${t.id}@${t.at}`)).toEqual([
      `every@${iso(MIN - 5000)}`,
      `every@${iso(11 * MIN - 5000)}`,
    ]);
  });

  it('runs a task in its warm sandbox when warm-ahead has one, else as usual', async () => {
    addTask({ id: 'warmed', nextRun: iso(MIN) });
    addTask({ id: 'cold', nextRun: iso(MIN) });
    const w = warm();
    const { runs } = startScheduler({ warm: w.hook });
    await vi.advanceTimersByTimeAsync(MIN);
    expect(w.handed).toEqual(['warmed']);
    expect(runs.map((r) => r.id)).toEqual(['cold']);
    expect(store.tasks.byId('warmed')?.lastResult).toBe('from the warm sandbox');
  });
});
