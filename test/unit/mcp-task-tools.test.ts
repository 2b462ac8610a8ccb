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
import { ipcTaskSchema, requestIdSchema, type IpcResponse as IpcResult } from '../../src/contract/ipc.js';
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
function contextFor(g: RegisteredGroup, opts: { snapshot?: boolean } = {}) {
  if (opts.snapshot !== false) writeTaskSnapshot({ ipcDir: ipcRoot }, g, TASKS);
  const ctx: ToolContext = {
    chatJid: g.jid,
    groupFolder: g.folder,
    isMain: g.isMain,
    ipcDir: path.join(ipcRoot, g.folder, 'from-agent'),
    inboxDir: path.join(ipcRoot, g.folder, 'to-agent'),
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
  // The rules live on the host; the tools only write what the agent asked, for the host to decide.
  it('write each request as a file the host schema accepts, with the group context by default', async () => {
    const { ctx, written } = contextFor(group('main', true));
    const once = await scheduleTask(ctx, {
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    expect(once.text).toMatch(
      /^Submitted \(schedule_task task-\d+-[0-9a-f]+\), but the host has not confirmed it yet\.$/,
    );
    const taskId = /task-\d+-[0-9a-f]+/.exec(once.text)?.[0];
    await scheduleTask(ctx, { prompt: 'daily digest', schedule_type: 'cron', schedule_value: '0 9 * * 1-5' });
    await taskAction(ctx, 'pause_task', 'own-active');
    await updateTask(ctx, { task_id: 'own-active', schedule_type: 'cron', schedule_value: '30 8 * * *' });
    const club = {
      jid: '123@g.us',
      name: 'Family',
      folder: 'club',
      trigger: '@Andy',
      requires_trigger: false,
    };
    await registerGroup(ctx, club);
    const files = written();
    expect(files).toHaveLength(5);
    for (const file of files) expect(ipcTaskSchema.safeParse(file).success, JSON.stringify(file)).toBe(true);
    expect(files).toContainEqual({
      type: 'schedule_task',
      taskId,
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    expect(files).toContainEqual(expect.objectContaining({ prompt: 'daily digest', context_mode: 'group' }));
    expect(files).toContainEqual({ type: 'pause_task', taskId: 'own-active' });
    expect(files).toContainEqual({
      type: 'update_task',
      taskId: 'own-active',
      schedule_type: 'cron',
      schedule_value: '30 8 * * *',
    });
    expect(files).toContainEqual({ type: 'register_group', ...club });
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
    expect(listTasks(contextFor(group('work'), { snapshot: false }).ctx).text).toBe('No scheduled tasks.');
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
