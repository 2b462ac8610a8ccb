import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Config } from '../../src/config.js';
import { openStore, type Store } from '../../src/db/store.js';
import { registerGroup } from '../../src/groups.js';
import type { IpcResponse as IpcResult } from '../../src/contract/ipc.js';
import { handleTaskIpc, type TaskIpcDeps } from '../../src/ipc/task-handler.js';
import type { RegisteredGroup, ScheduledTask } from '../../src/types.js';
import { testGroup } from './sandbox-helpers.js';

const NOW = Date.parse('2026-11-23T12:00:00.000Z');

const group = (jid: string, folder: string, isMain = false) => testGroup(folder, { jid, isMain });
const main = group('local:main', 'main', true);
const family = group('family@g.us', 'family');
const work = group('work@g.us', 'work');

let dir: string;
let store: Store;
let deps: TaskIpcDeps;
let reschedules: number;
let changedFolders: string[];
let refreshes: number;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: NOW });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-task-ipc-'));
  store = openStore(path.join(dir, 'messages.db'));
  for (const g of [main, family, work]) store.groups.upsert(g);
  reschedules = 0;
  changedFolders = [];
  refreshes = 0;
  deps = {
    store,
    config: { timezone: 'Europe/Berlin', minTaskIntervalMs: 60_000 },
    maxActiveTasksPerGroup: 3,
    onTasksChanged: (folder) => void (reschedules++, changedFolders.push(folder)),
    registerGroup: (g) =>
      registerGroup(store, { assistantName: 'Andy', groupsDir: dir, projectRoot: dir } as Config, g),
    refreshGroups: async () => void refreshes++,
  };
});

afterEach(() => {
  vi.useRealTimers();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const schedule = (extra: Record<string, unknown> = {}) => ({
  type: 'schedule_task',
  prompt: 'Send the weekly summary',
  schedule_type: 'cron',
  schedule_value: '0 9 * * 1',
  ...extra,
});

function addTask(id: string, owner: RegisteredGroup, extra: Partial<ScheduledTask> = {}): void {
  store.tasks.create({
    id,
    groupFolder: owner.folder,
    chatJid: owner.jid,
    prompt: 'p',
    scheduleType: 'interval',
    scheduleValue: '3600000',
    contextMode: 'isolated',
    nextRun: '2026-11-23T13:00:00.000Z',
    lastRun: null,
    lastResult: null,
    status: 'active',
    createdAt: '2026-11-01T00:00:00.000Z',
    ...extra,
  });
}

function expectRefused(result: IpcResult, pattern: RegExp | string): void {
  expect(result.ok).toBe(false);
  if (!result.ok) expect(result.error).toMatch(pattern);
}

describe('schedule_task', () => {
  it('lets a group schedule for its own chat, with or without naming it', async () => {
    // The answer the agent gets back names the task and its next run.
    expect(await handleTaskIpc(schedule({ taskId: 'a' }), family, deps)).toEqual({
      ok: true,
      result: 'scheduled task a, next run 2026-11-30T08:00:00.000Z (UTC)',
    });
    expect(
      await handleTaskIpc(schedule({ taskId: 'b', target_group_jid: family.jid }), family, deps),
    ).toMatchObject({ ok: true });
    expect(store.tasks.byId('a')).toMatchObject({
      groupFolder: 'family',
      chatJid: 'family@g.us',
      status: 'active',
      contextMode: 'isolated',
      scheduleType: 'cron',
      // Monday 09:00 in Berlin (CET) after Monday 2026-11-23 13:00 local.
      nextRun: '2026-11-30T08:00:00.000Z',
      createdAt: new Date(NOW).toISOString(),
    });
    expect(store.tasks.byId('b')!.groupFolder).toBe('family');
    expect(reschedules).toBe(2);
    expect(changedFolders).toEqual(['family', 'family']);
  });

  it('refuses a non-main group scheduling for another chat', async () => {
    const result = await handleTaskIpc(schedule({ target_group_jid: work.jid }), family, deps);
    expectRefused(result, "group 'family': may schedule tasks only for its own chat, not for 'work@g.us'");
    expect(store.tasks.all()).toEqual([]);
    expect(reschedules).toBe(0);
    expect(changedFolders).toEqual([]);
  });

  it('lets main schedule for any registered group, in that group', async () => {
    const result = await handleTaskIpc(
      schedule({ taskId: 'for-work', target_group_jid: work.jid, context_mode: 'group' }),
      main,
      deps,
    );
    expect(result).toMatchObject({ ok: true });
    expect(store.tasks.byId('for-work')).toMatchObject({
      groupFolder: 'work',
      chatJid: 'work@g.us',
      contextMode: 'group',
    });
    expect(changedFolders).toEqual(['work']);
  });

  it('refuses main scheduling for an unregistered chat', async () => {
    const result = await handleTaskIpc(schedule({ target_group_jid: 'stranger@g.us' }), main, deps);
    expectRefused(result, "target_group_jid 'stranger@g.us' is not a registered group");
    expect(store.tasks.all()).toEqual([]);
  });

  it('generates a unique id when none is given', async () => {
    await handleTaskIpc(schedule(), family, deps);
    await handleTaskIpc(schedule(), family, deps);
    const ids = store.tasks.all().map((t) => t.id);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
    for (const id of ids) expect(id).toMatch(/^task-\d+-[0-9a-f]{8}$/);
  });

  it('refuses a task id that is already in use, even by another group', async () => {
    addTask('taken', work);
    expectRefused(
      await handleTaskIpc(schedule({ taskId: 'taken' }), family, deps),
      /UNIQUE constraint failed/,
    );
    expect(store.tasks.byId('taken')!.groupFolder).toBe('work');
  });

  it.each([
    [{ schedule_type: 'cron', schedule_value: '99 * * * *' }, /invalid cron expression '99 \* \* \* \*'/],
    [{ schedule_type: 'interval', schedule_value: '1000' }, /interval must be at least 60000 ms/],
    [{ schedule_type: 'once', schedule_value: '2026-11-23T15:30:00Z' }, /once must be a local time/],
    [{ schedule_type: 'once', schedule_value: '2026-02-30T10:00' }, /is not a real date and time/],
    [{ schedule_type: 'once', schedule_value: '2026-11-23T10:00' }, /is in the past/],
  ])('refuses an invalid schedule %j', async (fields, pattern) => {
    expectRefused(await handleTaskIpc(schedule(fields), family, deps), pattern);
    expect(store.tasks.all()).toEqual([]);
  });

  it('applies the configured minimum interval', async () => {
    deps.config = { ...deps.config, minTaskIntervalMs: 2000 };
    expectRefused(
      await handleTaskIpc(schedule({ schedule_type: 'interval', schedule_value: '1999' }), family, deps),
      'interval must be at least 2000 ms, got 1999',
    );
    const fast = schedule({ taskId: 'fast', schedule_type: 'interval', schedule_value: '2000' });
    expect(await handleTaskIpc(fast, family, deps)).toMatchObject({ ok: true });
    expect(store.tasks.byId('fast')!.nextRun).toBe(new Date(NOW + 2000).toISOString());
  });

  it('stores a once task at its local time', async () => {
    const payload = schedule({ taskId: 'o', schedule_type: 'once', schedule_value: '2026-11-23T18:00' });
    expect(await handleTaskIpc(payload, family, deps)).toMatchObject({ ok: true });
    expect(store.tasks.byId('o')!.nextRun).toBe('2026-11-23T17:00:00.000Z');
  });

  it('enforces the active-task limit per group; paused tasks do not count', async () => {
    addTask('t1', family);
    addTask('t2', family);
    addTask('t3', family, { status: 'paused' });
    addTask('w1', work);
    expect(await handleTaskIpc(schedule({ taskId: 't4' }), family, deps)).toMatchObject({ ok: true });
    expectRefused(
      await handleTaskIpc(schedule({ taskId: 't5' }), family, deps),
      "group 'family' already has 3 active tasks (limit 3)",
    );
    expectRefused(
      await handleTaskIpc(schedule({ taskId: 't6', target_group_jid: family.jid }), main, deps),
      /already has 3 active tasks/,
    );
    // Resuming counts too.
    expectRefused(await handleTaskIpc({ type: 'resume_task', taskId: 't3' }, family, deps), /3 active tasks/);
    expect(await handleTaskIpc(schedule({ taskId: 'w2' }), work, deps)).toMatchObject({ ok: true });
  });
});

describe('pause, resume, cancel and update', () => {
  beforeEach(() => {
    addTask('fam', family);
    addTask('wrk', work);
    addTask('adm', main);
  });

  it.each(['pause_task', 'resume_task', 'cancel_task', 'update_task'])(
    'refuse %s on another group’s task from a non-main group',
    async (type) => {
      const before = store.tasks.all();
      for (const taskId of ['wrk', 'adm']) {
        const payload = { type, taskId, prompt: 'hijacked' };
        expectRefused(await handleTaskIpc(payload, family, deps), /may manage only its own tasks/);
      }
      expect(store.tasks.all()).toEqual(before);
      expect(reschedules).toBe(0);
    },
  );

  it('lets a group pause, resume, update and cancel its own task', async () => {
    expect(await handleTaskIpc({ type: 'pause_task', taskId: 'fam' }, family, deps)).toEqual({
      ok: true,
      result: 'task fam paused',
    });
    expect(store.tasks.byId('fam')!.status).toBe('paused');

    expect(await handleTaskIpc({ type: 'resume_task', taskId: 'fam' }, family, deps)).toEqual({
      ok: true,
      result: 'task fam resumed',
    });
    // Interval counted afresh from now.
    expect(store.tasks.byId('fam')).toMatchObject({ status: 'active', nextRun: '2026-11-23T13:00:00.000Z' });

    const update = {
      type: 'update_task',
      taskId: 'fam',
      prompt: 'new words',
      schedule_type: 'cron',
      schedule_value: '0 8 * * *',
    };
    expect(await handleTaskIpc(update, family, deps)).toMatchObject({ ok: true });
    expect(store.tasks.byId('fam')).toMatchObject({
      prompt: 'new words',
      scheduleType: 'cron',
      scheduleValue: '0 8 * * *',
      nextRun: '2026-11-24T07:00:00.000Z',
    });

    expect(await handleTaskIpc({ type: 'cancel_task', taskId: 'fam' }, family, deps)).toEqual({
      ok: true,
      result: 'task fam cancelled',
    });
    expect(store.tasks.byId('fam')).toBeUndefined();
    expect(reschedules).toBe(4);
    expect(changedFolders).toEqual(['family', 'family', 'family', 'family']);
  });

  it('lets main manage any group’s task', async () => {
    expect(await handleTaskIpc({ type: 'pause_task', taskId: 'wrk' }, main, deps)).toMatchObject({
      ok: true,
    });
    expect(store.tasks.byId('wrk')!.status).toBe('paused');
    expect(changedFolders).toEqual(['work']);
    expect(await handleTaskIpc({ type: 'cancel_task', taskId: 'fam' }, main, deps)).toMatchObject({
      ok: true,
    });
    expect(store.tasks.byId('fam')).toBeUndefined();
  });

  it('names an unknown task id', async () => {
    expectRefused(
      await handleTaskIpc({ type: 'pause_task', taskId: 'nope' }, main, deps),
      "task 'nope' not found",
    );
  });

  it('refuses an update with an invalid schedule, or of a completed task', async () => {
    expectRefused(
      await handleTaskIpc({ type: 'update_task', taskId: 'fam', schedule_value: 'soon' }, family, deps),
      /interval must be a positive whole number/,
    );
    expect(store.tasks.byId('fam')!.scheduleValue).toBe('3600000');
    addTask('done', family, {
      status: 'completed',
      nextRun: null,
      scheduleType: 'once',
      scheduleValue: '2026-11-20T10:00',
    });
    expectRefused(
      await handleTaskIpc({ type: 'update_task', taskId: 'done', prompt: 'again' }, family, deps),
      /is completed/,
    );
    expectRefused(await handleTaskIpc({ type: 'resume_task', taskId: 'done' }, family, deps), /is completed/);
  });
});

describe('register_group and refresh_groups', () => {
  const register = (extra: Record<string, unknown> = {}) => ({
    type: 'register_group',
    jid: 'club@g.us',
    name: 'Book club',
    folder: 'book-club',
    trigger: '@Andy',
    ...extra,
  });

  it('lets main register a group', async () => {
    expect(await handleTaskIpc(register({ requires_trigger: false }), main, deps)).toEqual({
      ok: true,
      result: 'registered Book club (club@g.us) in folder book-club',
    });
    expect(store.groups.byJid('club@g.us')).toMatchObject({
      folder: 'book-club',
      name: 'Book club',
      requiresTrigger: false,
      isMain: false,
      addedAt: new Date(NOW).toISOString(),
    });
  });

  it('refuses register_group and refresh_groups from a non-main group', async () => {
    expectRefused(
      await handleTaskIpc(register(), family, deps),
      "group 'family': only the main group may register groups",
    );
    expect(store.groups.byJid('club@g.us')).toBeUndefined();
    expectRefused(
      await handleTaskIpc({ type: 'refresh_groups' }, family, deps),
      /only the main group may refresh/,
    );
    expect(refreshes).toBe(0);
  });

  it('lets main refresh the group list', async () => {
    expect(await handleTaskIpc({ type: 'refresh_groups' }, main, deps)).toMatchObject({ ok: true });
    expect(refreshes).toBe(1);
  });

  it('reports a failed refresh instead of throwing', async () => {
    deps.refreshGroups = async () => {
      throw new Error('not connected');
    };
    expectRefused(
      await handleTaskIpc({ type: 'refresh_groups' }, main, deps),
      'refresh_groups failed: not connected',
    );
  });

  it.each(['../x', 'global', 'GLOBAL', 'errors', '.hidden', 'a/b', '-dash', 'with space', 'x'.repeat(65)])(
    'refuses folder %j',
    async (folder) => {
      expectRefused(await handleTaskIpc(register({ folder }), main, deps), `invalid folder '${folder}'`);
      expect(store.groups.byJid('club@g.us')).toBeUndefined();
    },
  );

  it('refuses a jid registered under another folder and a folder used by another jid', async () => {
    expectRefused(
      await handleTaskIpc(register({ jid: family.jid, folder: 'family2' }), main, deps),
      "chat 'family@g.us' is already registered with folder 'family'",
    );
    expectRefused(
      await handleTaskIpc(register({ folder: 'work' }), main, deps),
      "folder 'work' is already used by chat 'work@g.us'",
    );
    expect(store.groups.byFolder('family2')).toBeUndefined();
  });

  it('passes on a refusal from the host’s registration', async () => {
    deps.registerGroup = () => ({ ok: false, error: 'cannot create groups/book-club' });
    expectRefused(
      await handleTaskIpc(register(), main, deps),
      "group 'main': cannot create groups/book-club",
    );
  });

  it('re-registering keeps main status and the original date', async () => {
    const again = register({ jid: main.jid, folder: 'main', name: 'Me', trigger: '@Bob' });
    expect(await handleTaskIpc(again, main, deps)).toMatchObject({ ok: true });
    expect(store.groups.byJid(main.jid)).toMatchObject({
      name: 'Me',
      trigger: '@Bob',
      isMain: true,
      addedAt: main.addedAt,
    });
  });
});

describe('malformed files', () => {
  it.each([
    ['not an object', 'hello', /^invalid task file: \(root\): .*expected object/i],
    ['an unknown type', { type: 'format_disk' }, /^invalid task file: type: /],
    [
      'a missing prompt',
      { type: 'schedule_task', schedule_type: 'cron', schedule_value: '0 9 * * *' },
      /prompt: /,
    ],
    ['a bad schedule_type', schedule({ schedule_type: 'hourly' }), /schedule_type: /],
    ['a missing task id', { type: 'pause_task' }, /taskId: /],
    [
      'a non-boolean requires_trigger',
      { type: 'register_group', jid: 'j', name: 'n', folder: 'f', trigger: 't', requires_trigger: 'no' },
      /requires_trigger: /,
    ],
  ])('names the problem in %s', async (_label, payload, pattern) => {
    expectRefused(await handleTaskIpc(payload, main, deps), pattern);
    expect(store.tasks.all()).toEqual([]);
  });

  it('ignores extra fields, including a claimed source group', async () => {
    const payload = schedule({ taskId: 'x', groupFolder: 'main', isMain: true, chatJid: main.jid });
    expect(await handleTaskIpc(payload, family, deps)).toMatchObject({ ok: true });
    expect(store.tasks.byId('x')!.groupFolder).toBe('family');
  });

  it('turns a store failure into a refusal instead of throwing', async () => {
    store.close();
    expectRefused(await handleTaskIpc(schedule(), family, deps), /^schedule_task failed: /);
    store = openStore(path.join(dir, 'messages.db'));
  });
});
