import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask } from '../types.js';
import { parseCommand, withStore } from './args.js';

// WAL: a running host is not blocked, and its scheduler polls the store.
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
  const say = (text: string, code = 0) => ((code ? err : out).write(text), code);
  const json = (value: object) => say(`${JSON.stringify(value, null, 2)}\n`);
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), tz) : '-');
  const next = (t: ScheduledTask) => (t.status === 'active' ? time(t.nextRun) : '-');
  return withStore(deps, sub !== 'list' && sub !== 'runs', (store) => {
    if (sub === 'list') {
      const tasks = store?.tasks.all() ?? [];
      if (p.values.json) return json({ tasks });
      if (!tasks.length) return say('No scheduled tasks.\n');
      const rows = tasks.map((t) => [
        t.id,
        t.groupFolder,
        t.status,
        schedule(t),
        next(t),
        oneLine(t.lastResult),
      ]);
      return say(table([['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${tz})`, 'LAST RESULT'], ...rows]));
    }
    const task = store?.tasks.byId(id);
    if (sub === 'runs') {
      if (!task) return say(`error: task '${id}' not found\n`, 1);
      const runs = store!.tasks.runLogs(id); // newest first
      if (p.values.json) return json({ task, runs });
      const rows = runs.map((r) => [
        time(r.runAt),
        `${r.durationMs / 1000}s`,
        r.status,
        oneLine(r.error ?? r.result),
      ]);
      const head = `Task ${id} (${task.groupFolder}), ${task.status}, ${schedule(task)}, next run ${next(task)}\n`;
      return say(head + table([[`TIME (${tz})`, 'DURATION', 'STATUS', 'RESULT'], ...rows]));
    }
    const r =
      sub === 'pause'
        ? pauseTask(store!, id)
        : sub === 'resume'
          ? resumeTask(store!, id, tz, new Date(deps.now?.() ?? Date.now()))
          : cancelTask(store!, id);
    if (!r.ok) return say(`error: ${r.error}\n`, 1);
    const when = sub === 'resume' && r.task.nextRun ? `; next run ${time(r.task.nextRun)}` : '';
    return say(
      `${{ pause: 'Paused', resume: 'Resumed', cancel: 'Cancelled' }[sub]} task ${id} (${r.task.groupFolder})${when}.\n`,
    );
  });
}

const oneLine = (text: string | null) => {
  const line = text?.replace(/\s+/g, ' ').trim() || '-';
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
};

function schedule({ scheduleType: type, scheduleValue: v }: ScheduledTask) {
  if (type !== 'interval') return `${type} ${v}`;
  const [unit, n] = Object.entries({ d: 864e5, h: 36e5, m: 6e4, s: 1e3, ms: 1 }).find(
    ([, n]) => +v % n === 0,
  )!;
  return `interval every ${+v / n}${unit}`;
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
