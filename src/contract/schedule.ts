import { CronExpressionParser } from 'cron-parser';
import type { ScheduleType } from './ipc.js';

// Instants are ISO-8601 UTC; cron and `once` are read in `timezone`.

export const MIN_INTERVAL_MS = 60_000;
/** Keeps instants four-digit-year ISO strings (compared as strings in SQL). */
const MAX_INTERVAL_MS = 10 * 366 * 86_400_000;
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;

const no = (error: string) => ({ error });

/** The run after `from` (`once`: its instant, even if past). */
export function computeNextRun(
  type: ScheduleType,
  value: string,
  { from, timezone }: { from: Date; timezone: string },
): string | { error: string } {
  const v = value.trim();
  if (!isValidTimezone(timezone)) return no(`unknown timezone '${timezone}'`);
  if (type === 'cron') {
    const fail = (why: string) => no(`invalid cron expression '${v}': ${why}`);
    // A sixth field (or @secondly) would run every second.
    if (v.startsWith('@') ? v === '@secondly' : v.split(/\s+/).length !== 5)
      return fail('use 5 fields, e.g. "0 9 * * 1"');
    try {
      return CronExpressionParser.parse(v, { currentDate: from, tz: timezone }).next().toDate().toISOString();
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  if (type === 'interval') {
    const ms = Number(v);
    return /^\d+$/.test(v) && ms && ms <= MAX_INTERVAL_MS
      ? new Date(from.getTime() + ms).toISOString()
      : no(`interval must be a positive whole number of milliseconds up to ten years, got '${v}'`);
  }
  if (!LOCAL_TIME.test(v))
    return no(`once must be a local time like 2026-11-23T15:30:00 without Z or offset, got '${v}'`);
  // Date.parse rolls February 30th over into March.
  const wall = Date.parse(`${v}Z`);
  if (!new Date(wall || 0).toISOString().startsWith(v))
    return no(`once time '${v}' is not a real date and time`);
  return new Date(wallTimeToInstant(wall, timezone)).toISOString();
}

/** A new schedule's first run. */
export function validateSchedule(
  type: ScheduleType,
  value: string,
  timezone: string,
  { now = new Date(), minIntervalMs: min = MIN_INTERVAL_MS } = {},
) {
  const next = computeNextRun(type, value, { from: now, timezone });
  const error =
    typeof next !== 'string'
      ? next.error
      : type === 'interval' && Number(value) < min
        ? `interval must be at least ${min} ms, got ${value.trim()}`
        : // One minute of grace: the agent computed "now" a moment ago.
          type === 'once' && Date.parse(next) < now.getTime() - 60_000
          ? `once time '${value}' is in the past (now it is ${formatLocal(now, timezone)} in ${timezone})`
          : undefined;
  return error ? { ok: false as const, error } : { ok: true as const, nextRun: next as string };
}

/** DST gaps and overlaps as Temporal's "compatible". */
function wallTimeToInstant(wall: number, timezone: string): number {
  const before = offsetAt(wall - 86_400_000, timezone);
  const fits = [before, offsetAt(wall, timezone), offsetAt(wall + 86_400_000, timezone)]
    .map((offset) => wall - offset)
    .filter((instant) => instant + offsetAt(instant, timezone) === wall);
  return fits.length ? Math.min(...fits) : wall - before;
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
