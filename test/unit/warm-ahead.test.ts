import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/db/store.js';
import type { NewMessage, RegisteredGroup, ScheduledTask } from '../../src/types.js';
import { WARM_AHEAD_DEFAULTS, WarmAhead, type WarmAheadOptions } from '../../src/warm-ahead.js';
import { FakeRunner, reply } from '../helpers/fake-runtime.js';
import { tempHome } from '../helpers/temp-home.js';

const FAMILY: RegisteredGroup = {
  jid: 'family@g.us',
  name: 'Family',
  folder: 'family',
  trigger: '@Andy',
  requiresTrigger: true,
  isMain: false,
  addedAt: '2026-01-01T00:00:00.000Z',
};
const NOW = Date.parse('2026-11-30T12:00:00.000Z');
const MIN = 60_000;

let env: ReturnType<typeof tempHome>;
let store: Store;
let n = 0;

function message(content: string, minutesAgo: number, extra: Partial<NewMessage> = {}): void {
  store.messages.store({
    id: `m${++n}`,
    chatJid: FAMILY.jid,
    sender: 'ann@s.whatsapp.net',
    senderName: 'Ann',
    content,
    timestamp: new Date(NOW - minutesAgo * MIN).toISOString(),
    isFromMe: false,
    isBotMessage: false,
    ...extra,
  });
}

/** A queue that starts every warm run at once (or refuses, when `full`). */
function fakeQueue() {
  const q = {
    full: false,
    active: new Set<string>(),
    warms: [] as Array<{ jid: string; opts: { idleMs: number; max: number; taskId?: string } }>,
    runs: [] as Array<Promise<boolean>>,
    isActive: (jid: string) => q.active.has(jid),
    startWarm: (
      jid: string,
      opts: { idleMs: number; max: number; taskId?: string },
      run: () => Promise<boolean>,
    ) => {
      if (q.full) return false;
      q.warms.push({ jid, opts });
      q.active.add(jid);
      q.runs.push(run());
      return true;
    },
  };
  return q;
}

function setup(options: Partial<WarmAheadOptions> = {}, runner = new FakeRunner()) {
  const queue = fakeQueue();
  const sent: string[] = [];
  const warmed: string[] = [];
  const warm = new WarmAhead(
    {
      store,
      config: env.config,
      runner,
      queue,
      runWarm: async (jid) => {
        warmed.push(jid);
        return true;
      },
      send: async (_jid, text) => sent.push(text),
    },
    { ...WARM_AHEAD_DEFAULTS, ...options },
  );
  return { warm, queue, sent, warmed, runner };
}

beforeEach(() => {
  env = tempHome();
  store = openStore(env.config.dbPath);
  store.groups.upsert(FAMILY);
});
afterEach(() => {
  vi.useRealTimers();
  store.close();
  env.cleanup();
});

describe('WarmAhead triggers', () => {
  it('warms a registered chat when the person types, with the warm idle and cap', () => {
    const { warm, queue, warmed } = setup({ idleMs: 1234, max: 3 });
    warm.onTyping('stranger@g.us');
    warm.onTyping(FAMILY.jid);
    warm.onTyping(FAMILY.jid); // already running: nothing more
    expect(queue.warms).toEqual([{ jid: FAMILY.jid, opts: { idleMs: 1234, max: 3 } }]);
    expect(warmed).toEqual([FAMILY.jid]);
  });

  it('does nothing when off', () => {
    const { warm, queue } = setup({ enabled: false });
    warm.onTyping(FAMILY.jid);
    message('@Andy hi', 60);
    message('chatter', 0);
    warm.onUntriggered(FAMILY.jid);
    expect(queue.warms).toEqual([]);
    expect(warm.taskLeadMs).toBe(0);
  });

  it('warms on chatter after a lull in a group that triggered in the last days', () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const { warm, queue } = setup();
    message('@Andy what is for dinner?', 3 * 24 * 60);
    message('chatter', 30);
    message('more chatter', 0.5); // 29.5 minutes after the previous one: a lull
    warm.onUntriggered(FAMILY.jid);
    expect(queue.warms.map((w) => w.jid)).toEqual([FAMILY.jid]);
  });

  it('does not warm on chatter without a lull, or when the last trigger is too old', () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const { warm, queue } = setup();
    message('@Andy long ago', 8 * 24 * 60);
    message('chatter', 30);
    message('more chatter', 0);
    warm.onUntriggered(FAMILY.jid);
    expect(queue.warms).toEqual([]);

    message('@Andy recent', 0.9);
    message('quick reply', 0.5); // 24 s after it: no lull
    warm.onUntriggered(FAMILY.jid);
    expect(queue.warms).toEqual([]);
  });
});

describe('WarmAhead tasks', () => {
  const task: ScheduledTask = {
    id: 'task-1',
    groupFolder: 'family',
    chatJid: FAMILY.jid,
    prompt: 'water the plants',
    scheduleType: 'once',
    scheduleValue: '2026-11-30T12:00:05',
    contextMode: 'isolated',
    nextRun: '2026-11-30T12:00:05.000Z',
    lastRun: null,
    lastResult: null,
    status: 'active',
    createdAt: '2026-11-30T11:00:00.000Z',
  };

  /** A sandbox that answers the first file in its inbox. */
  const inboxRunner = () =>
    new FakeRunner(async (input, hooks, group) => {
      const dir = path.join(env.config.ipcDir, group.folder, 'to-agent', 'input');
      for (;;) {
        const name = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.json')) : undefined;
        if (name) {
          const { text } = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { text: string };
          return reply(hooks, `done: ${text.split('\n').at(-1)}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    });

  it('starts the task sandbox with no prompt and hands it the prompt only when run', async () => {
    const { warm, queue, sent, runner } = setup({}, inboxRunner());
    warm.soonDue(task);
    expect(queue.warms).toEqual([{ jid: FAMILY.jid, opts: { idleMs: 65_000, max: 2, taskId: 'task-1' } }]);
    expect(runner.inputs).toEqual([
      expect.objectContaining({ prompt: '', isScheduledTask: true, chatJid: FAMILY.jid }),
    ]);
    expect(runner.inputs[0]!.sessionId).toBeUndefined();
    await new Promise((r) => setTimeout(r, 30));
    expect(sent).toEqual([]);
    expect(warm.runTask({ ...task, id: 'other' })).toBeUndefined();
    const outcome = await warm.runTask(task);
    expect(outcome).toEqual({ status: 'success', result: 'done: water the plants' });
    expect(sent).toEqual(['done: water the plants']);
    expect(warm.runTask(task)).toBeUndefined();
  });

  it('leaves a task cold when its group is busy or no slot is free', () => {
    const { warm, queue } = setup();
    queue.active.add(FAMILY.jid);
    warm.soonDue(task);
    queue.active.clear();
    queue.full = true;
    warm.soonDue(task);
    expect(queue.warms).toEqual([]);
    expect(warm.runTask(task)).toBeUndefined();
  });
});
