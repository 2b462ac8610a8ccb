import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask, TaskRunLog } from '../types.js';
import { parseCommand, withStore } from './args.js';

const VERBS = { pause: 'Paused', resume: 'Resumed', cancel: 'Cancelled' };

/**
 * `nanoclaw tasks …`: writes straight to the SQLite file (WAL, so a running host is not blocked);
 * the host's scheduler notices within its store poll (SQLite data_version) and re-arms.
 */
export function runTasksCommand(
  args: string[],
  deps: {
    store?: Store;
    out: Writable;
    err?: Writable;
    config: Pick<Config, 'timezone' | 'dbPath'>;
    now?: () => number;
  },
): number {
  const { out, err = deps.out, config } = deps;
  const p = parseCommand(['tasks', ...args], out, err);
  if (typeof p === 'number') return p;
  const sub = p.command.slice(6) as keyof typeof VERBS | 'list' | 'runs';
  const id = p.positionals[0]!;
  return withStore(deps, sub !== 'list' && sub !== 'runs', (store) => {
    if (sub === 'list') {
      const tasks = store?.tasks.all() ?? [];
      out.write(
        p.values.json ? `${JSON.stringify({ tasks }, null, 2)}\n` : renderTaskTable(tasks, config.timezone),
      );
      return 0;
    }
    if (sub === 'runs') {
      const task = store?.tasks.byId(id);
      if (!task) return (err.write(`error: task '${id}' not found\n`), 1);
      const runs = store!.tasks.runLogs(id);
      out.write(
        p.values.json
          ? `${JSON.stringify({ task, runs }, null, 2)}\n`
          : renderRuns(task, runs, config.timezone),
      );
      return 0;
    }
    const now = new Date(deps.now?.() ?? Date.now());
    const result =
      sub === 'pause'
        ? pauseTask(store!, id)
        : sub === 'resume'
          ? resumeTask(store!, id, config.timezone, now)
          : cancelTask(store!, id);
    if (!result.ok) return (err.write(`error: ${result.error}\n`), 1);
    const next = sub === 'resume' && result.task.nextRun;
    const when = next ? `; next run ${formatLocal(new Date(next), config.timezone)}` : '';
    return (out.write(`${VERBS[sub]} task ${id} (${result.task.groupFolder})${when}.\n`), 0);
  });
}

const oneLine = (text: string | null, max: number) => {
  const line = (text ?? '-').replace(/\s+/g, ' ').trim() || '-';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};
const scheduleOf = (task: ScheduledTask) =>
  `${task.scheduleType} ${task.scheduleType === 'interval' ? every(Number(task.scheduleValue)) : task.scheduleValue}`;
const timeIn = (timezone: string) => (iso: string | null) =>
  iso ? formatLocal(new Date(iso), timezone) : '-';

function renderTaskTable(tasks: ScheduledTask[], timezone: string): string {
  if (tasks.length === 0) return 'No scheduled tasks.\n';
  const time = timeIn(timezone);
  const rows = tasks.map((task) => [
    task.id,
    task.groupFolder,
    task.status,
    scheduleOf(task),
    task.status === 'active' ? time(task.nextRun) : '-',
    time(task.lastRun),
    oneLine(task.lastResult, 40),
  ]);
  rows.unshift(['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${timezone})`, 'LAST RUN', 'LAST RESULT']);
  return table(rows);
}

/** The task on top, then its runs, newest first. */
function renderRuns(task: ScheduledTask, runs: TaskRunLog[], timezone: string): string {
  const time = timeIn(timezone);
  const head =
    `Task ${task.id} (${task.groupFolder}), ${task.status}, ${scheduleOf(task)}\n` +
    `Next run:    ${task.status === 'active' ? time(task.nextRun) : '-'} (${timezone})\n` +
    `Last result: ${oneLine(task.lastResult, 200)}\n\n`;
  if (runs.length === 0) return `${head}No runs yet.\n`;
  const rows = runs.map((r) => [
    time(r.runAt),
    duration(r.durationMs),
    r.status,
    oneLine(r.status === 'error' ? (r.error ?? r.result) : r.result, 80),
  ]);
  rows.unshift([`TIME (${timezone})`, 'DURATION', 'STATUS', 'RESULT / ERROR']);
  return head + table(rows);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

function duration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

function every(ms: number): string {
  for (const [unit, size] of Object.entries({ d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }))
    if (ms >= size && ms % size === 0) return `every ${ms / size}${unit}`;
  return `every ${ms}ms`;
}
