import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runTasksCommand } from '../../src/cli/tasks-command.js';
import { openStore, type Store } from '../../src/db/store.js';
import type { ScheduledTask } from '../../src/types.js';

const NOW = Date.parse('2026-11-23T12:00:00.000Z');

let dir: string;
let dbPath: string;
let store: Store;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-tasks-cli-'));
  dbPath = path.join(dir, 'messages.db');
  store = openStore(dbPath);
  vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
});

afterEach(() => {
  vi.useRealTimers();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function addTask(id: string, extra: Partial<ScheduledTask> = {}): void {
  store.tasks.create({
    id,
    groupFolder: 'family',
    chatJid: 'family@g.us',
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

function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { text: () => chunks.join('') });
}

/** Runs the command against its own connection to the file, as a separate CLI process would. */
function run(args: string[]) {
  const out = sink();
  const err = sink();
  const cliStore = openStore(dbPath);
  try {
    const code = runTasksCommand(args, {
      store: cliStore,
      out,
      err,
      config: { timezone: 'Europe/Berlin', dbPath },
    });
    return { code, out: out.text(), err: err.text() };
  } finally {
    cliStore.close();
  }
}

describe('nanoclaw tasks', () => {
  it('says so when there are no tasks', () => {
    expect(run(['list'])).toEqual({ code: 0, out: 'No scheduled tasks.\n', err: '' });
    expect(run([]).out).toBe('No scheduled tasks.\n');
  });

  it('lists tasks with group, status, schedule, local times and last result', () => {
    addTask('hourly', { lastRun: '2026-11-23T11:00:00.000Z', lastResult: 'Sent the\nsummary to the group' });
    addTask('weekly', {
      groupFolder: 'work',
      scheduleType: 'cron',
      scheduleValue: '0 9 * * 1',
      status: 'paused',
    });
    const { code, out } = run(['list']);
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+GROUP\s+STATUS\s+SCHEDULE\s+NEXT RUN \(Europe\/Berlin\)\s+LAST RESULT$/);
    expect(lines[1]).toMatch(
      /^hourly\s+family\s+active\s+interval every 3600s\s+2026-11-23 14:00:00\s+Sent the summary to the group$/,
    );
    // A paused task has no next run to show.
    expect(lines[2]).toMatch(/^weekly\s+work\s+paused\s+cron 0 9 \* \* 1\s+-\s+-$/);
    // Columns line up.
    expect(lines[1]!.indexOf('family')).toBe(lines[0]!.indexOf('GROUP'));
    expect(lines[2]!.indexOf('paused')).toBe(lines[0]!.indexOf('STATUS'));
  });

  it('pauses, resumes and cancels a task in the database file', () => {
    addTask('t1');
    expect(run(['pause', 't1'])).toEqual({ code: 0, out: 'Paused task t1 (family).\n', err: '' });
    expect(store.tasks.byId('t1')!.status).toBe('paused');

    const resumed = run(['resume', 't1']);
    expect(resumed).toEqual({
      code: 0,
      out: 'Resumed task t1 (family); next run 2026-11-23 14:00:00.\n',
      err: '',
    });
    expect(store.tasks.byId('t1')).toMatchObject({ status: 'active', nextRun: '2026-11-23T13:00:00.000Z' });

    expect(run(['cancel', 't1'])).toEqual({ code: 0, out: 'Cancelled task t1 (family).\n', err: '' });
    expect(store.tasks.byId('t1')).toBeUndefined();
  });

  it('resumes a once task whose time passed to run now', () => {
    addTask('o', {
      scheduleType: 'once',
      scheduleValue: '2026-11-23T09:00',
      nextRun: '2026-11-23T08:00:00.000Z',
      status: 'paused',
    });
    expect(run(['resume', 'o']).code).toBe(0);
    expect(store.tasks.byId('o')!.nextRun).toBe(new Date(NOW).toISOString());
  });

  it('names an unknown task id and exits 1', () => {
    for (const sub of ['pause', 'resume', 'cancel']) {
      expect(run([sub, 'ghost'])).toEqual({ code: 1, out: '', err: "error: task 'ghost' not found\n" });
    }
  });

  it('refuses to resume a completed task', () => {
    addTask('done', { status: 'completed', nextRun: null });
    expect(run(['resume', 'done'])).toMatchObject({ code: 1, err: "error: task 'done' is completed\n" });
  });

  it('explains an unknown subcommand or a missing id and exits 2', () => {
    const unknown = run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(
      /^error: unknown tasks command 'frobnicate'\nusage:\n {2}nanoclaw tasks list/,
    );
    const missing = run(['pause']);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^error: 'nanoclaw tasks pause' needs <id>/);
    expect(run(['list', '--bogus']).err).toMatch(/^error: Unknown option '--bogus'/);
    expect(run(['cancel', 'a', 'b']).code).toBe(2);
    expect(run(['toString']).code).toBe(2);
  });

  it('lists tasks as JSON with --json', () => {
    addTask('hourly');
    const { code, out } = run(['list', '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({
      tasks: [{ id: 'hourly', groupFolder: 'family', status: 'active' }],
    });
  });

  it("shows a task's next run, last result and its runs, newest first, read-only", () => {
    addTask('hourly');
    expect(run(['runs', 'hourly']).out).toBe(
      'Task hourly (family), active, interval every 3600s, next run 2026-11-23 14:00:00\n' +
        'TIME (Europe/Berlin)  DURATION  STATUS  RESULT\n',
    );
    const log = { taskId: 'hourly', status: 'success' as const, error: null };
    store.tasks.recordRun({
      ...log,
      runAt: '2026-11-23T10:00:00.000Z',
      durationMs: 850,
      result: 'Sent the\nsummary',
    });
    store.tasks.recordRun({
      ...log,
      runAt: '2026-11-23T11:00:00.000Z',
      durationMs: 125_000,
      status: 'error',
      result: null,
      error: 'sandbox timed out',
    });
    const before = fs.readFileSync(dbPath);
    const { code, out } = run(['runs', 'hourly']);
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe('Task hourly (family), active, interval every 3600s, next run 2026-11-23 14:00:00');
    expect(lines[1]).toMatch(/^TIME \(Europe\/Berlin\)\s+DURATION\s+STATUS\s+RESULT$/);
    expect(lines[2]).toMatch(/^2026-11-23 12:00:00\s+125s\s+error\s+sandbox timed out$/);
    expect(lines[3]).toMatch(/^2026-11-23 11:00:00\s+0.85s\s+success\s+Sent the summary$/);
    const json = JSON.parse(run(['runs', 'hourly', '--json']).out) as {
      task: { id: string };
      runs: Array<{ durationMs: number }>;
    };
    expect(json.task.id).toBe('hourly');
    expect(json.runs.map((r) => r.durationMs)).toEqual([125_000, 850]);
    expect(fs.readFileSync(dbPath).equals(before)).toBe(true);
    expect(run(['runs', 'ghost'])).toEqual({ code: 1, out: '', err: "error: task 'ghost' not found\n" });
    expect(run(['runs']).err).toMatch(/^error: 'nanoclaw tasks runs' needs <id>/);
  });

  it('prints usage on help', () => {
    const help = run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('nanoclaw tasks resume <id>');
  });
});
