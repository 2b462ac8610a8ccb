import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask } from '../types.js';
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
  const sub = p.command.slice(6) as keyof typeof VERBS | 'list';
  return withStore(deps, sub !== 'list', (store) => {
    if (sub === 'list') {
      const tasks = store?.tasks.all() ?? [];
      out.write(
        p.values.json ? `${JSON.stringify({ tasks }, null, 2)}\n` : renderTaskTable(tasks, config.timezone),
      );
      return 0;
    }
    const id = p.positionals[0]!;
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

function renderTaskTable(tasks: ScheduledTask[], timezone: string): string {
  if (tasks.length === 0) return 'No scheduled tasks.\n';
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), timezone) : '-');
  const rows = tasks.map((task) => {
    const result = (task.lastResult ?? '-').replace(/\s+/g, ' ').trim();
    const schedule =
      task.scheduleType === 'interval' ? every(Number(task.scheduleValue)) : task.scheduleValue;
    return [
      task.id,
      task.groupFolder,
      task.status,
      `${task.scheduleType} ${schedule}`,
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
        `${row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

function every(ms: number): string {
  for (const [unit, size] of Object.entries({ d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }))
    if (ms >= size && ms % size === 0) return `every ${ms / size}${unit}`;
  return `every ${ms}ms`;
}
