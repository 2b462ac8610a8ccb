import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask } from '../types.js';
import { parseCommand, withStore } from './args.js';

// Writes straight to the SQLite file (WAL: a running host is not blocked); its scheduler notices on its store poll.
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
  const tz = config.timezone;
  const p = parseCommand(['tasks', ...args], out, err);
  if (typeof p === 'number') return p;
  const sub = p.command.slice(6);
  const id = p.positionals[0]!;
  const json = (value: object) => (out.write(`${JSON.stringify(value, null, 2)}\n`), 0);
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), tz) : '-');
  const next = (t: ScheduledTask) => (t.status === 'active' ? time(t.nextRun) : '-');
  return withStore(deps, sub !== 'list' && sub !== 'runs', (store) => {
    if (sub === 'list') {
      const tasks = store?.tasks.all() ?? [];
      if (p.values.json) return json({ tasks });
      if (!tasks.length) return (out.write('No scheduled tasks.\n'), 0);
      const head = ['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${tz})`, 'LAST RUN', 'LAST RESULT'];
      const rows = tasks.map((t) => [
        t.id,
        t.groupFolder,
        t.status,
        schedule(t),
        next(t),
        time(t.lastRun),
        oneLine(t.lastResult, 40),
      ]);
      return (out.write(table([head, ...rows])), 0);
    }
    const task = store?.tasks.byId(id);
    if (sub === 'runs') {
      if (!task) return (err.write(`error: task '${id}' not found\n`), 1);
      const runs = store!.tasks.runLogs(id); // newest first
      if (p.values.json) return json({ task, runs });
      out.write(
        `Task ${id} (${task.groupFolder}), ${task.status}, ${schedule(task)}\nNext run:    ${next(task)} (${tz})\nLast result: ${oneLine(task.lastResult, 200)}\n\n`,
      );
      const rows = runs.map((r) => [
        time(r.runAt),
        duration(r.durationMs),
        r.status,
        oneLine(r.status === 'error' ? (r.error ?? r.result) : r.result, 80),
      ]);
      return (
        out.write(
          runs.length
            ? table([[`TIME (${tz})`, 'DURATION', 'STATUS', 'RESULT / ERROR'], ...rows])
            : 'No runs yet.\n',
        ),
        0
      );
    }
    const r =
      sub === 'pause'
        ? pauseTask(store!, id)
        : sub === 'resume'
          ? resumeTask(store!, id, tz, new Date(deps.now?.() ?? Date.now()))
          : cancelTask(store!, id);
    if (!r.ok) return (err.write(`error: ${r.error}\n`), 1);
    const when = sub === 'resume' && r.task.nextRun ? `; next run ${time(r.task.nextRun)}` : '';
    const verb = { pause: 'Paused', resume: 'Resumed', cancel: 'Cancelled' }[sub];
    return (out.write(`${verb} task ${id} (${r.task.groupFolder})${when}.\n`), 0);
  });
}

const oneLine = (text: string | null, max: number) => {
  const line = text?.replace(/\s+/g, ' ').trim() || '-';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

function schedule({ scheduleType: type, scheduleValue: value }: ScheduledTask) {
  if (type !== 'interval') return `${type} ${value}`;
  const ms = Number(value);
  const [unit, size] = Object.entries({ d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }).find(
    ([, n]) => ms % n === 0 && ms >= n,
  )!;
  return `interval every ${ms / size}${unit}`;
}

const table = (rows: string[][]) =>
  rows
    .map(
      (row) =>
        row
          .map((cell, i) => cell.padEnd(Math.max(...rows.map((r) => r[i]!.length))))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');

const duration = (ms: number) =>
  ms < 1000
    ? `${ms}ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)}s`
      : `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
