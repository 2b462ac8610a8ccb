import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatTaskPrompt } from '../../src/scheduler/task-prompt.js';
import { writeTaskSnapshot } from '../../src/scheduler/task-snapshot.js';
import type { ScheduledTask } from '../../src/types.js';
import { testGroup } from './sandbox-helpers.js';

let ipcDir: string;
beforeEach(() => {
  ipcDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-snapshot-'));
});
afterEach(() => fs.rmSync(ipcDir, { recursive: true, force: true }));

const group = (folder: string, isMain: boolean) => testGroup(folder, { jid: `${folder}@g.us`, isMain });

const task = (id: string, groupFolder: string): ScheduledTask => ({
  id,
  groupFolder,
  chatJid: `${groupFolder}@g.us`,
  prompt: `check ${id}`,
  scheduleType: 'cron',
  scheduleValue: '0 9 * * *',
  contextMode: 'group',
  nextRun: '2026-11-24T08:00:00.000Z',
  lastRun: '2026-11-23T08:00:00.000Z',
  lastResult: 'sent the summary',
  status: 'active',
  createdAt: '2026-11-01T00:00:00.000Z',
});

const tasks = [task('m1', 'main'), task('f1', 'family'), task('w1', 'work'), task('f2', 'family')];

function readSnapshot(folder: string): unknown[] {
  return JSON.parse(
    fs.readFileSync(path.join(ipcDir, folder, 'to-agent', 'current_tasks.json'), 'utf8'),
  ) as unknown[];
}

describe('writeTaskSnapshot', () => {
  it('shows main every task', () => {
    writeTaskSnapshot({ ipcDir }, group('main', true), tasks);
    expect(readSnapshot('main').map((t) => (t as { id: string }).id)).toEqual(['m1', 'f1', 'w1', 'f2']);
  });

  it('shows any other group only its own tasks, as stored', () => {
    writeTaskSnapshot({ ipcDir }, group('family', false), tasks);
    expect(readSnapshot('family')).toEqual([
      task('f1', 'family'),
      expect.objectContaining({ id: 'f2', groupFolder: 'family' }),
    ]);
  });

  it('replaces the previous file whole and leaves no temporary file behind', () => {
    writeTaskSnapshot({ ipcDir }, group('work', false), tasks);
    writeTaskSnapshot({ ipcDir }, group('work', false), []);
    expect(readSnapshot('work')).toEqual([]);
    expect(fs.readdirSync(path.join(ipcDir, 'work', 'to-agent'))).toEqual(['current_tasks.json']);
  });
});

it('marks a task prompt as automatic, naming the task', () => {
  expect(formatTaskPrompt({ id: 'task-1', prompt: 'Summarise the news' })).toBe(
    '[Scheduled task task-1 — automatic, not a message from the user]\nSummarise the news',
  );
});
