import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { formatLocal } from '../contract/schedule.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { ScheduledTask, TaskRunLog } from '../types.js';
import { parseCommand, withStore } from './args.js';

// WAL: a running host is not blocked, and its scheduler polls the store.
export function runTasksCommand(
  args: string[],
  deps: { store?: Store; out: Writable; err?: Writable; config: Pick<Config, 'timezone' | 'dbPath'> },
): number {
  const { out, err = out } = deps;
  const tz = deps.config.timezone;
  const p = parseCommand(['tasks', ...args], out, err);
  if (typeof p === 'number') return p;
  const sub = p.command.slice(6);
  const id = p.positionals[0]!;
  const say = (text: string, code = 0) => ((code ? err : out).write(`${text}\n`), code);
  const time = (iso: string | null) => (iso ? formatLocal(new Date(iso), tz) : '-');
  const next = (t: ScheduledTask) => time(t.status === 'active' ? t.nextRun : null);
  const schedule = ({ scheduleType: type, scheduleValue: v }: ScheduledTask) =>
    `${type} ${type === 'interval' ? `every ${+v / 1000}s` : v}`;
  const row = (t: ScheduledTask) => [t.id, t.groupFolder, t.status, schedule(t), next(t), line(t.lastResult)];
  const runRow = (r: TaskRunLog) => [
    time(r.runAt),
    `${r.durationMs / 1e3}s`,
    r.status,
    line(r.error ?? r.result),
  ];
  return withStore(deps, sub !== 'list' && sub !== 'runs', (store) => {
    const task = store?.tasks.byId(id);
    if (sub === 'list') {
      const tasks = store?.tasks.all() ?? [];
      if (p.values.json) return say(JSON.stringify({ tasks }, null, 2));
      if (!tasks.length) return say('No scheduled tasks.');
      return say(
        table([['ID', 'GROUP', 'STATUS', 'SCHEDULE', `NEXT RUN (${tz})`, 'LAST RESULT'], ...tasks.map(row)]),
      );
    }
    if (sub === 'runs') {
      if (!task) return say(`error: task '${id}' not found`, 1);
      const runs = store!.tasks.runLogs(id);
      if (p.values.json) return say(JSON.stringify({ task, runs }, null, 2));
      return say(
        `Task ${id} (${task.groupFolder}), ${task.status}, ${schedule(task)}, next run ${next(task)}\n` +
          table([[`TIME (${tz})`, 'DURATION', 'STATUS', 'RESULT'], ...runs.map(runRow)]),
      );
    }
    const r = { pause: pauseTask, cancel: cancelTask, resume: resumeTask }[sub]!(store!, id, tz, new Date());
    if (!r.ok) return say(`error: ${r.error}`, 1);
    const when = sub === 'resume' ? `; next run ${time(r.task.nextRun)}` : '';
    const done = { pause: 'Paused', cancel: 'Cancelled', resume: 'Resumed' }[sub];
    return say(`${done} task ${id} (${r.task.groupFolder})${when}.`);
  });
}

const line = (text: string | null) => {
  const one = text?.replace(/\s+/g, ' ').trim() || '-';
  return one.length > 60 ? `${one.slice(0, 59)}…` : one;
};

const table = (rows: string[][]) =>
  rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(Math.max(...rows.map((r) => r[i]!.length))))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
