import { CronExpressionParser } from 'cron-parser';

export type ScheduleType = 'cron' | 'interval' | 'once';

export type ScheduleCheck = { ok: true } | { ok: false; error: string };

/**
 * The same rules as the host's src/scheduler/schedule.ts, checked before anything is written: the
 * host refuses a bad schedule only in its log, so this is where the agent hears about the mistake.
 * Keep the two in step (test/unit/schedule-validation-sync.test.ts compares them).
 */

/** The host's default minimum; the sandbox gets the host's actual value in NANOCLAW_MIN_TASK_INTERVAL_MS. */
export const DEFAULT_MIN_INTERVAL_MS = 60_000;
const MAX_INTERVAL_MS = 10 * 366 * 24 * 60 * 60 * 1000;
/** A `once` time this far in the past is still accepted (the agent computed "now" a moment ago). */
const ONCE_PAST_GRACE_MS = 60_000;

/** Aliases that fire at most hourly, as on the host; `@secondly` and `@minutely` are refused. */
const CRON_ALIASES = [
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@hourly',
  '@weekdays',
  '@weekends',
];

/** Local wall-clock time, to the minute or second, with no `Z` and no offset. */
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;

export interface ScheduleOptions {
  /** Timezone for cron; `once` times are read in the process's TZ, which the sandbox sets to the host's. */
  tz?: string;
  minIntervalMs?: number;
  now?: Date;
}

/** The host's minimum interval as the sandbox was told it; the default when absent or garbled. */
export function minIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.NANOCLAW_MIN_TASK_INTERVAL_MS);
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MIN_INTERVAL_MS;
}

/** Rejects dates JavaScript would silently roll over, such as February 30th. */
function isRealLocalTime(value: string): boolean {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return false;
  const [year, month, day] = value.slice(0, 10).split('-').map(Number);
  return date.getFullYear() === year && date.getMonth() + 1 === month && date.getDate() === day;
}

function checkCron(value: string, v: string, tz?: string): ScheduleCheck {
  const isAlias = v.startsWith('@');
  if (isAlias ? !CRON_ALIASES.includes(v) : v.split(/\s+/).length !== 5)
    return {
      ok: false,
      error: `schedule_value "${value}" is not a valid cron expression: use 5 fields (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1" for Mondays at 09:00) or one of ${CRON_ALIASES.join(', ')}`,
    };
  try {
    CronExpressionParser.parse(v, tz ? { tz } : {});
    return { ok: true };
  } catch (err) {
    return {
      ok: false,
      error: `schedule_value "${value}" is not a valid cron expression (e.g. "0 9 * * 1" for Mondays at 09:00): ${(err as Error).message}`,
    };
  }
}

function checkInterval(value: string, v: string, minIntervalMs: number): ScheduleCheck {
  const ms = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(ms) || ms <= 0)
    return {
      ok: false,
      error: `schedule_value "${value}" must be a positive whole number of milliseconds for an interval (e.g. "3600000" for hourly)`,
    };
  if (ms < minIntervalMs)
    return {
      ok: false,
      error: `schedule_value "${value}" is too short: an interval must be at least ${minIntervalMs} ms`,
    };
  if (ms > MAX_INTERVAL_MS)
    return {
      ok: false,
      error: `schedule_value "${value}" is too long: an interval must be at most ${MAX_INTERVAL_MS} ms (ten years)`,
    };
  return { ok: true };
}

function checkOnce(value: string, v: string, now: Date): ScheduleCheck {
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(v))
    return {
      ok: false,
      error: `schedule_value "${value}" must be a local time without "Z" or a UTC offset (e.g. "2026-11-23T15:30:00")`,
    };
  if (!LOCAL_TIME.test(v) || !isRealLocalTime(v))
    return {
      ok: false,
      error: `schedule_value "${value}" must be a local date and time like "2026-11-23T15:30:00"`,
    };
  if (new Date(v).getTime() < now.getTime() - ONCE_PAST_GRACE_MS)
    return {
      ok: false,
      error: `schedule_value "${value}" is in the past: the local time now is ${localNow(now)}`,
    };
  return { ok: true };
}

/** `2026-11-23T15:30:00`, the current local time in the format `once` expects. */
function localNow(now: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
}

export function validateSchedule(
  type: ScheduleType,
  value: string,
  opts: ScheduleOptions = {},
): ScheduleCheck {
  const v = value.trim();
  switch (type) {
    case 'cron':
      return checkCron(value, v, opts.tz);
    case 'interval':
      return checkInterval(value, v, opts.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS);
    case 'once':
      return checkOnce(value, v, opts.now ?? new Date());
  }
}
