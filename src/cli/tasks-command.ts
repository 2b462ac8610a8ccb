import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask } from '../types.js';

export interface TasksCommandDeps {
  store: Store;
  out: Writable;
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
 * `nanoclaw tasks`: writes straight to the SQLite file (WAL, so a running host is not blocked);
 * the host's scheduler notices within its store poll (SQLite data_version) and re-arms.
 */
export function runTasksCommand(args: string[], deps: TasksCommandDeps): number {
  const { store, out, err = deps.out, config } = deps;
  const usageError = (message: string) => {
    err.write(`Error: ${message}\n${USAGE}`);
    return 2;
  };
  const [sub = 'list', id, ...rest] = args;
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    out.write(USAGE);
    return 0;
  }
  if (sub === 'list') {
    if (id !== undefined) return usageError(`'tasks list' takes no arguments`);
    out.write(renderTaskTable(store.tasks.all(), config.timezone));
    return 0;
  }
  const verbs: Record<string, string> = { pause: 'Paused', resume: 'Resumed', cancel: 'Cancelled' };
  if (!Object.hasOwn(verbs, sub)) return usageError(`unknown tasks subcommand '${sub}'`);
  if (!id) return usageError(`'tasks ${sub}' needs a task id (see 'nanoclaw tasks list')`);
  if (rest.length > 0) return usageError(`'tasks ${sub}' takes one task id`);

  const result =
    sub === 'pause'
      ? pauseTask(store, id)
      : sub === 'resume'
        ? resumeTask(store, id, config.timezone, new Date(deps.now?.() ?? Date.now()))
        : cancelTask(store, id);
  if (!result.ok) {
    err.write(`Error: ${result.error}\n`);
    return 1;
  }
  const next = result.task.nextRun;
  const when = sub === 'resume' && next ? `; next run ${formatLocal(new Date(next), config.timezone)}` : '';
  out.write(`${verbs[sub]} task ${id} (${result.task.groupFolder})${when}.\n`);
  return 0;
}

/** An aligned table; times in the configured timezone, the last result cut to one short line. */
function renderTaskTable(tasks: ScheduledTask[], timezone: string): string {
  if (tasks.length === 0) return 'No scheduled tasks.\n';
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), timezone) : '-');
  const rows = tasks.map((task) => {
    const result = (task.lastResult ?? '-').replace(/\s+/g, ' ').trim();
    return [
      task.id,
      task.groupFolder,
      task.status,
      `${task.scheduleType} ${task.scheduleType === 'interval' ? every(Number(task.scheduleValue)) : task.scheduleValue}`,
      task.status === 'active' ? time(task.nextRun) : '-',
      time(task.lastRun),
      result.length > 40 ? `${result.slice(0, 39)}…` : result,
    ];
  });
  rows.unshift(['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${timezone})`, 'LAST RUN', 'LAST RESULT']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map(
      (row) =>
        row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');
}

function every(ms: number): string {
  const units = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
  for (const [unit, size] of Object.entries(units))
    if (ms >= size && ms % size === 0) return `every ${ms / size}${unit}`;
  return `every ${ms}ms`;
}
