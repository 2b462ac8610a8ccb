import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../scheduler/schedule.js';
import { cancelTask, pauseTask, resumeTask, type TaskActionResult } from '../scheduler/task-actions.js';
import type { ScheduledTask } from '../types.js';

export interface TasksCommandDeps {
  store: Store;
  out: Writable;
  /** Where errors go; defaults to `out`. */
  err?: Writable;
  config: Pick<Config, 'timezone'>;
  now?: () => number;
}

const USAGE = `Usage: nanoclaw tasks [list]
       nanoclaw tasks pause <id>
       nanoclaw tasks resume <id>
       nanoclaw tasks cancel <id>
`;

/**
 * `nanoclaw tasks`: list, pause, resume or cancel scheduled tasks. It writes straight to the
 * SQLite file (WAL, so a running host is not blocked); the host's scheduler notices the change
 * within its store poll (SQLite data_version) and re-arms. Returns the exit code.
 */
export function runTasksCommand(args: string[], deps: TasksCommandDeps): number {
  const err = deps.err ?? deps.out;
  const [sub = 'list', id, ...rest] = args;
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    deps.out.write(USAGE);
    return 0;
  }
  if (sub === 'list') {
    if (id !== undefined) return usageError(err, `'tasks list' takes no arguments`);
    deps.out.write(renderTaskTable(deps.store.tasks.all(), deps.config.timezone));
    return 0;
  }
  const actions: Record<string, { verb: string; run: (taskId: string) => TaskActionResult }> = {
    pause: { verb: 'Paused', run: (taskId) => pauseTask(deps.store, taskId) },
    resume: {
      verb: 'Resumed',
      run: (taskId) =>
        resumeTask(deps.store, taskId, deps.config.timezone, new Date(deps.now?.() ?? Date.now())),
    },
    cancel: { verb: 'Cancelled', run: (taskId) => cancelTask(deps.store, taskId) },
  };
  const action = Object.hasOwn(actions, sub) ? actions[sub] : undefined;
  if (!action) return usageError(err, `unknown tasks subcommand '${sub}'`);
  if (!id) return usageError(err, `'tasks ${sub}' needs a task id (see 'nanoclaw tasks list')`);
  if (rest.length > 0) return usageError(err, `'tasks ${sub}' takes one task id`);

  const result = action.run(id);
  if (!result.ok) {
    err.write(`Error: ${result.error}\n`);
    return 1;
  }
  const when =
    sub === 'resume' && result.task.nextRun
      ? `; next run ${formatLocal(new Date(result.task.nextRun), deps.config.timezone)}`
      : '';
  deps.out.write(`${action.verb} task ${id} (${result.task.groupFolder})${when}.\n`);
  return 0;
}

function usageError(err: Writable, message: string): number {
  err.write(`Error: ${message}\n${USAGE}`);
  return 2;
}

/** A plain aligned table; times in the configured timezone, long text cut to one short line. */
export function renderTaskTable(tasks: ScheduledTask[], timezone: string): string {
  if (tasks.length === 0) return 'No scheduled tasks.\n';
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), timezone) : '-');
  const rows = tasks.map((task) => [
    task.id,
    task.groupFolder,
    task.status,
    `${task.scheduleType} ${describeSchedule(task)}`,
    task.status === 'active' ? time(task.nextRun) : '-',
    time(task.lastRun),
    oneLine(task.lastResult ?? '-', 40),
  ]);
  const header = ['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${timezone})`, 'LAST RUN', 'LAST RESULT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function describeSchedule(task: ScheduledTask): string {
  if (task.scheduleType !== 'interval') return task.scheduleValue;
  const ms = Number(task.scheduleValue);
  const units: Array<[number, string]> = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `every ${ms / size}${unit}`;
  return `every ${task.scheduleValue}ms`;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
