import { CronExpressionParser } from 'cron-parser';

export type ScheduleType = 'cron' | 'interval' | 'once';

export type ScheduleCheck = { ok: true } | { ok: false; error: string };

/** Local wall-clock time, to the minute or second, with no `Z` and no offset. */
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;

/** Rejects dates JavaScript would silently roll over, such as February 30th. */
function isRealLocalTime(value: string): boolean {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return false;
  const [year, month, day] = value.slice(0, 10).split('-').map(Number);
  return date.getFullYear() === year && date.getMonth() + 1 === month && date.getDate() === day;
}

/**
 * Checks a schedule before anything is written, so the agent gets the mistake back at once
 * instead of a task that silently never runs.
 */
export function validateSchedule(type: ScheduleType, value: string, tz?: string): ScheduleCheck {
  const v = value.trim();
  switch (type) {
    case 'cron':
      try {
        CronExpressionParser.parse(v, tz ? { tz } : {});
        return { ok: true };
      } catch (err) {
        return {
          ok: false,
          error: `schedule_value "${value}" is not a valid cron expression (e.g. "0 9 * * 1" for Mondays at 09:00): ${(err as Error).message}`,
        };
      }
    case 'interval': {
      if (!/^\d+$/.test(v) || Number(v) <= 0)
        return {
          ok: false,
          error: `schedule_value "${value}" must be a positive whole number of milliseconds for an interval (e.g. "3600000" for hourly)`,
        };
      return { ok: true };
    }
    case 'once': {
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
      return { ok: true };
    }
  }
}
