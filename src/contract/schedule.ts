import { CronExpressionParser } from 'cron-parser';
import type { ScheduleType } from './ipc.js';

// Instants are ISO-8601 UTC; cron and `once` are read in `timezone`.

export const MIN_INTERVAL_MS = 60_000;
/** Keeps instants four-digit-year ISO strings (compared as strings in SQL). */
const MAX_INTERVAL_MS = 10 * 366 * 24 * 3600_000;
/** At most hourly: no `@secondly` or `@minutely`. */
const CRON_ALIASES = '@yearly @annually @monthly @weekly @daily @hourly @weekdays @weekends'.split(' ');
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;

/** The run after `from`, or null when invalid; for `once` the instant itself, even if past. */
export function computeNextRun(
  type: ScheduleType,
  value: string,
  { from, timezone }: { from: Date; timezone: string },
): string | null {
  const next = nextRun(type, value.trim(), from, timezone);
  return typeof next === 'string' ? next : null;
}

/** A new schedule's first run (the minimum applies only to new schedules). */
export function validateSchedule(
  type: ScheduleType,
  value: string,
  timezone: string,
  { now = new Date(), minIntervalMs: min = MIN_INTERVAL_MS }: { now?: Date; minIntervalMs?: number } = {},
): { ok: true; nextRun: string } | { ok: false; error: string } {
  const v = value.trim();
  const next = nextRun(type, v, now, timezone);
  const error =
    typeof next !== 'string'
      ? next.error
      : type === 'interval' && Number(v) < min
        ? `interval must be at least ${min} ms${inWords(min)}, got ${v}`
        : // One minute of grace: the agent computed "now" a moment ago.
          type === 'once' && Date.parse(next) < now.getTime() - 60_000
          ? `once time '${value}' is in the past (now it is ${formatLocal(now, timezone)} in ${timezone})`
          : undefined;
  return error ? { ok: false, error } : { ok: true, nextRun: next as string };
}

function nextRun(type: ScheduleType, v: string, from: Date, timezone: string): string | { error: string } {
  if (!isValidTimezone(timezone)) return { error: `unknown timezone '${timezone}'` };
  if (type === 'cron') {
    const fail = (why: string) => ({ error: `invalid cron expression '${v}': ${why}` });
    if (v.startsWith('@') ? !CRON_ALIASES.includes(v) : v.split(/\s+/).length !== 5)
      return fail(
        `use 5 fields (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1" for Mondays at 09:00) or one of ${CRON_ALIASES.join(', ')}`,
      );
    try {
      return CronExpressionParser.parse(v, { currentDate: from, tz: timezone }).next().toDate().toISOString();
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  if (type === 'interval') {
    const ms = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(ms) || ms <= 0)
      return {
        error: `interval must be a positive whole number of milliseconds (e.g. 3600000 for hourly), got '${v}'`,
      };
    if (ms > MAX_INTERVAL_MS)
      return { error: `interval must be at most ${MAX_INTERVAL_MS} ms (ten years), got ${ms}` };
    return new Date(from.getTime() + ms).toISOString();
  }
  if (!LOCAL_TIME.test(v))
    return { error: `once must be a local time like 2026-11-23T15:30:00 without Z or offset, got '${v}'` };
  // Date.parse rolls February 30th over into March.
  const wall = Date.parse(`${v}Z`);
  if (Number.isNaN(wall) || !new Date(wall).toISOString().startsWith(v))
    return { error: `once time '${v}' is not a real date and time` };
  return new Date(wallTimeToInstant(wall, timezone)).toISOString();
}

function inWords(ms: number): string {
  const [size, unit] = ms % 60_000 ? [1000, 'second'] : [60_000, 'minute'];
  if (ms % size) return '';
  return ms === size ? ` (one ${unit})` : ` (${ms / size} ${unit}s)`;
}

/** The instant of a local time (given as if UTC), as Temporal's "compatible" does DST gaps and overlaps. */
function wallTimeToInstant(wall: number, timezone: string): number {
  const before = offsetAt(wall - 86400_000, timezone);
  const fits = [before, offsetAt(wall, timezone), offsetAt(wall + 86400_000, timezone)]
    .map((offset) => wall - offset)
    .filter((instant) => instant + offsetAt(instant, timezone) === wall);
  return fits.length > 0 ? Math.min(...fits) : wall - before;
}

// sv-SE: `2026-11-23 15:30:00`.
const wallClock = (instant: number, timezone: string) =>
  new Date(instant).toLocaleString('sv-SE', { timeZone: timezone });

const offsetAt = (instant: number, timezone: string) =>
  Date.parse(`${wallClock(instant, timezone).replace(' ', 'T')}Z`) - Math.floor(instant / 1000) * 1000;

export const formatLocal = (date: Date, timezone: string) =>
  isValidTimezone(timezone) ? wallClock(date.getTime(), timezone) : date.toISOString();

function isValidTimezone(timeZone: string): boolean {
  try {
    return !!new Intl.DateTimeFormat('en', { timeZone });
  } catch {
    return false;
  }
}
