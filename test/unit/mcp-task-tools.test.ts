import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  listTasks,
  registerGroup,
  scheduleTask,
  taskAction,
  updateTask,
  type ToolContext,
} from '../../container/agent-runner/src/mcp-tools.js';
import { ipcTaskSchema, requestIdSchema } from '../../src/contract/ipc.js';
import type { IpcResult } from '../../src/ipc/task-handler.js';
import { IpcWatcher } from '../../src/ipc/watcher.js';
import { writeTaskSnapshot } from '../../src/scheduler/task-snapshot.js';
import type { RegisteredGroup, ScheduledTask } from '../../src/types.js';
import { testGroup } from './sandbox-helpers.js';

/**
 * The task tools as the agent calls them, against the task list the host really writes
 * (src/scheduler/task-snapshot.ts) and the IPC schema the host really parses.
 */

const group = (folder: string, isMain = false) => testGroup(folder, { isMain });

const task = (id: string, folder: string, extra: Partial<ScheduledTask> = {}): ScheduledTask => ({
  id,
  groupFolder: folder,
  chatJid: `local:${folder}`,
  prompt: `prompt of ${id}`,
  scheduleType: 'interval',
  scheduleValue: '3600000',
  contextMode: 'group',
  nextRun: '2030-01-01T10:00:00.000Z',
  lastRun: null,
  lastResult: null,
  status: 'active',
  createdAt: '2026-01-01T00:00:00.000Z',
  ...extra,
});

const TASKS = [
  task('own-active', 'family'),
  task('own-done', 'family', {
    scheduleType: 'once',
    scheduleValue: '2026-01-02T10:00:00',
    nextRun: null,
    lastRun: '2026-01-02T10:00:01.000Z',
    lastResult: 'Sent the\nreminder',
    status: 'completed',
  }),
  task('own-ran-paused', 'family', {
    scheduleType: 'once',
    scheduleValue: '2026-01-02T10:00:00',
    nextRun: null,
    lastRun: '2026-01-02T10:00:01.000Z',
    status: 'paused',
  }),
  task('main-task', 'main'),
];

let ipcRoot: string;

beforeEach(() => {
  ipcRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-tools-'));
  // No host answers here unless a test plays it: the tools stop waiting almost at once.
  vi.stubEnv('NANOCLAW_RESPONSE_WAIT_MS', '1');
});
afterEach(() => {
  vi.unstubAllEnvs();
  fs.rmSync(ipcRoot, { recursive: true, force: true });
});

/** A group's tool context over the snapshot the host writes for that group. */
function contextFor(g: RegisteredGroup, opts: { snapshot?: boolean; minIntervalMs?: number } = {}) {
  if (opts.snapshot !== false) writeTaskSnapshot({ ipcDir: ipcRoot }, g, TASKS);
  const ctx: ToolContext = {
    chatJid: g.jid,
    groupFolder: g.folder,
    isMain: g.isMain,
    ipcDir: path.join(ipcRoot, g.folder, 'from-agent'),
    inboxDir: path.join(ipcRoot, g.folder, 'to-agent'),
    tz: 'UTC',
    ...(opts.minIntervalMs ? { minIntervalMs: opts.minIntervalMs } : {}),
  };
  const written = () => {
    const dir = path.join(ctx.ipcDir, 'tasks');
    return (fs.existsSync(dir) ? fs.readdirSync(dir) : []).sort().map((f) => {
      const { requestId, ...file } = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<
        string,
        unknown
      >;
      expect(f).toBe(`${parseInt(f, 10)}-${String(requestId)}.json`);
      expect(requestIdSchema.safeParse(requestId).success).toBe(true);
      return file;
    });
  };
  return { ctx, written };
}

describe('task tools', () => {
  it('refuse at once what the host would refuse, going by the published task list', async () => {
    const { ctx, written } = contextFor(group('family'));
    expect(await taskAction(ctx, 'pause_task', 'main-task')).toEqual({
      text: "Task main-task not found among this group's tasks; list_tasks shows the ids.",
      isError: true,
    });
    expect((await taskAction(ctx, 'pause_task', 'own-done')).text).toBe(
      'Task own-done has completed; schedule a new task instead.',
    );
    expect((await taskAction(ctx, 'resume_task', 'own-done')).isError).toBe(true);
    expect((await updateTask(ctx, { task_id: 'own-done', prompt: 'again' })).isError).toBe(true);
    expect((await taskAction(ctx, 'resume_task', 'own-ran-paused')).text).toBe(
      'Task own-ran-paused is a once task that already ran; schedule a new task instead.',
    );
    expect(written()).toEqual([]);

    expect((await taskAction(ctx, 'pause_task', 'own-active')).isError).toBeUndefined();
    expect((await taskAction(ctx, 'cancel_task', 'own-done')).isError).toBeUndefined();
    expect(written()).toHaveLength(2);
    expect(written()).toEqual(
      expect.arrayContaining([
        { type: 'pause_task', taskId: 'own-active' },
        { type: 'cancel_task', taskId: 'own-done' },
      ]),
    );
  });

  it('let main manage any group’s task but still refuse unknown ids', async () => {
    const { ctx, written } = contextFor(group('main', true));
    expect((await taskAction(ctx, 'pause_task', 'own-active')).isError).toBeUndefined();
    expect((await taskAction(ctx, 'cancel_task', 'nope')).text).toBe(
      'Task nope not found; list_tasks shows the ids.',
    );
    expect(written()).toEqual([{ type: 'pause_task', taskId: 'own-active' }]);
  });

  it('leave the decision to the host without a task list, or for a task just scheduled', async () => {
    const { ctx, written } = contextFor(group('family'), { snapshot: false });
    expect((await taskAction(ctx, 'pause_task', 'anything')).isError).toBeUndefined();

    const listed = contextFor(group('work'));
    const scheduled = await scheduleTask(listed.ctx, {
      prompt: 'p',
      schedule_type: 'cron',
      schedule_value: '0 9 * * *',
    });
    const id = /task-\d+-[0-9a-f]+/.exec(scheduled.text)![0];
    expect((await taskAction(listed.ctx, 'pause_task', id)).isError).toBeUndefined();
    expect(written()).toEqual([{ type: 'pause_task', taskId: 'anything' }]);
    // Both files written (names within one millisecond need not sort in call order).
    expect(
      listed
        .written()
        .map((f) => f.type)
        .sort(),
    ).toEqual(['pause_task', 'schedule_task']);
  });

  it('schedule with the group context by default, in a file the host accepts', async () => {
    const { ctx, written } = contextFor(group('family'), { minIntervalMs: 2000 });
    expect(
      (await scheduleTask(ctx, { prompt: 'p', schedule_type: 'interval', schedule_value: '1999' })).text,
    ).toContain('interval must be at least 2000 ms');
    const ok = await scheduleTask(ctx, { prompt: 'p', schedule_type: 'interval', schedule_value: ' 2000 ' });
    expect(ok.text).toMatch(
      /^Submitted \(schedule_task task-\d+-[0-9a-f]+\), but the host has not confirmed it yet\.$/,
    );
    const [file] = written();
    expect(file).toMatchObject({ schedule_value: '2000', context_mode: 'group' });
    expect(ipcTaskSchema.safeParse(file).success).toBe(true);
  });

  it('list what the host published, with the last run and its result', () => {
    const { ctx } = contextFor(group('family'));
    expect(listTasks(ctx).text).toBe(
      [
        'Scheduled tasks (next/last times in UTC):',
        '- own-active (active; interval: 3600000, next 2030-01-01T10:00:00.000Z): prompt of own-active',
        '- own-done (completed; once: 2026-01-02T10:00:00, last 2026-01-02T10:00:01.000Z): prompt of own-done',
        '  last result: Sent the reminder',
        '- own-ran-paused (paused; once: 2026-01-02T10:00:00, last 2026-01-02T10:00:01.000Z): prompt of own-ran-paused',
      ].join('\n'),
    );
    expect(listTasks(contextFor(group('main', true)).ctx).text).toContain(
      '- main-task [main] (active; interval: 3600000',
    );
  });

  it('check schedules before writing, and write files the host schema accepts', async () => {
    const { ctx, written } = contextFor(group('family'));
    for (const [type, value] of [
      ['cron', 'every day at nine'],
      ['interval', '0'],
      ['interval', '5m'],
      ['once', '2036-11-23T15:30:00Z'],
      ['once', '2036-11-23T15:30:00+02:00'],
      ['once', 'tomorrow'],
      ['once', '2036-02-30T10:00:00'],
    ] as const) {
      const reply = await scheduleTask(ctx, { prompt: 'p', schedule_type: type, schedule_value: value });
      expect(reply.isError, `${type} ${value}`).toBe(true);
      expect(reply.text).toContain(value);
    }
    expect(written()).toEqual([]);

    const once = await scheduleTask(ctx, {
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    const taskId = /task-\d+-[0-9a-f]+/.exec(once.text)?.[0];
    await scheduleTask(ctx, { prompt: 'daily digest', schedule_type: 'cron', schedule_value: '0 9 * * 1-5' });
    await taskAction(ctx, 'pause_task', 'own-active');
    await updateTask(ctx, { task_id: 'own-active', schedule_type: 'cron', schedule_value: '30 8 * * *' });
    // Checked against the type the task already has (interval here).
    expect((await updateTask(ctx, { task_id: 'own-active', schedule_value: 'not cron' })).isError).toBe(true);
    const files = written();
    expect(files).toHaveLength(4);
    for (const file of files) expect(ipcTaskSchema.safeParse(file).success, JSON.stringify(file)).toBe(true);
    expect(files).toContainEqual({
      type: 'schedule_task',
      taskId,
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    expect(files).toContainEqual({ type: 'pause_task', taskId: 'own-active' });
    expect(files).toContainEqual({
      type: 'update_task',
      taskId: 'own-active',
      schedule_type: 'cron',
      schedule_value: '30 8 * * *',
    });
  });

  it('keep a non-main group to its own chat, and let main register groups with safe folder names', async () => {
    const family = contextFor(group('family'));
    const foreign = { prompt: 'p', schedule_type: 'interval', schedule_value: '60000' } as const;
    expect((await scheduleTask(family.ctx, { ...foreign, target_group_jid: 'local:work' })).isError).toBe(
      true,
    );
    const club = { jid: '123@g.us', name: 'Family', folder: 'club', trigger: '@Andy' };
    expect((await registerGroup(family.ctx, club)).isError).toBe(true);
    expect(family.written()).toEqual([]);

    const main = contextFor(group('main', true));
    for (const folder of ['global', '../etc', '-x', 'a b'])
      expect((await registerGroup(main.ctx, { ...club, folder })).text, folder).toContain(
        `folder '${folder}' is not allowed`,
      );
    expect((await registerGroup(main.ctx, { ...club, requires_trigger: false })).isError).toBeUndefined();
    expect(main.written()).toEqual([{ type: 'register_group', ...club, requires_trigger: false }]);
    expect(ipcTaskSchema.safeParse(main.written()[0]).success).toBe(true);
  });
});

describe("the host's answer", () => {
  /** A host that answers each task file as `decide` says, through the real watcher. */
  function host(g: RegisteredGroup, decide: (payload: Record<string, unknown>) => IpcResult) {
    const watcher = new IpcWatcher({
      ipcDir: ipcRoot,
      pollMs: 60_000,
      groups: () => [g],
      handle: async (_kind, payload) => decide(payload as Record<string, unknown>),
    });
    watcher.start();
    return watcher;
  }

  it('comes back as the tool result, or as a tool error with the host’s reason', async () => {
    vi.stubEnv('NANOCLAW_RESPONSE_WAIT_MS', '5000');
    const family = group('family');
    const { ctx } = contextFor(family);
    const watcher = host(family, (p) =>
      p.type === 'schedule_task'
        ? {
            ok: false,
            error: "group 'family' already has 3 active tasks (limit 3); cancel or pause one first",
          }
        : { ok: true, result: `task ${String(p.taskId)} paused` },
    );
    try {
      const cron = { prompt: 'p', schedule_type: 'cron', schedule_value: '0 9 * * *' } as const;
      expect(await scheduleTask(ctx, cron)).toEqual({
        text: "The host refused: group 'family' already has 3 active tasks (limit 3); cancel or pause one first",
        isError: true,
      });
      expect(await taskAction(ctx, 'pause_task', 'own-active')).toEqual({ text: 'task own-active paused' });
      // Read, never deleted: the inbox is the host's.
      expect(fs.readdirSync(path.join(ctx.inboxDir, 'responses'))).toHaveLength(2);
    } finally {
      watcher.stop();
    }
  });

  it('without an answer in time, says the request was submitted but not confirmed', async () => {
    vi.stubEnv('NANOCLAW_RESPONSE_WAIT_MS', '200');
    const { ctx, written } = contextFor(group('family'));
    const started = Date.now();
    expect(await taskAction(ctx, 'cancel_task', 'own-active')).toEqual({
      text: 'Submitted (cancel_task own-active), but the host has not confirmed it yet.',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(written()).toEqual([{ type: 'cancel_task', taskId: 'own-active' }]);
  });
});
