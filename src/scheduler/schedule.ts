import { CronExpressionParser } from 'cron-parser';
import type { ScheduleType } from '../types.js';

/**
 * Pure schedule maths: when does a task run next, and is a schedule the agent asked for valid.
 * All instants are ISO-8601 UTC strings; cron and `once` times are read in the configured timezone.
 */

/**
 * The default shortest interval for a new task (Config.minTaskIntervalMs): cron's finest step is a
 * minute, and a shorter interval would only keep a sandbox busy back to back. The agent-runner's
 * schedule-validation.ts mirrors these rules so the agent hears a refusal at once.
 */
export const MIN_INTERVAL_MS = 60_000;
/** Keeps every computed instant a plain four-digit-year ISO string (string comparison in SQL). */
export const MAX_INTERVAL_MS = 10 * 366 * 24 * 60 * 60 * 1000;
/** A `once` time this far in the past is still accepted (the agent computed "now" a moment ago). */
export const ONCE_PAST_GRACE_MS = 60_000;

/** Aliases that fire at most hourly; `@secondly` and `@minutely` are left out on purpose. */
const CRON_ALIASES = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@hourly',
  '@weekdays',
  '@weekends',
]);

const ONCE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/;
const ONCE_FORMAT_ERROR = 'once must be a local time like 2026-11-23T15:30:00 without Z or offset';

export type ScheduleCheck = { ok: true; nextRun: string } | { ok: false; error: string };

/**
 * The next run after `from`, or null when there is none (an invalid value). For `once` this is
 * the instant itself, even when it is already past: callers decide what a past time means.
 */
export function computeNextRun(
  type: ScheduleType,
  value: string,
  opts: { from: Date; timezone: string },
): string | null {
  const next = nextRunOrError(type, value, opts.from, opts.timezone);
  return typeof next === 'string' ? next : null;
}

/**
 * Checks a schedule as an agent (or a person) wrote it and returns its first run. Errors name the
 * problem so the refusal in the log tells the reader what to fix. The minimum interval applies to
 * new schedules only: a stored task keeps running if the minimum is raised later.
 */
export function validateSchedule(
  type: ScheduleType,
  value: string,
  timezone: string,
  opts: { now?: Date; minIntervalMs?: number } = {},
): ScheduleCheck {
  const now = opts.now ?? new Date();
  const next = nextRunOrError(type, value, now, timezone);
  if (typeof next !== 'string') return { ok: false, error: next.error };
  const minIntervalMs = opts.minIntervalMs ?? MIN_INTERVAL_MS;
  if (type === 'interval' && Number(value.trim()) < minIntervalMs) {
    return {
      ok: false,
      error: `interval must be at least ${minIntervalMs} ms${describeDuration(minIntervalMs)}, got ${value.trim()}`,
    };
  }
  if (type === 'once' && Date.parse(next) < now.getTime() - ONCE_PAST_GRACE_MS) {
    return {
      ok: false,
      error: `once time '${value}' is in the past (now it is ${formatLocal(now, timezone)} in ${timezone})`,
    };
  }
  return { ok: true, nextRun: next };
}

function nextRunOrError(
  type: ScheduleType,
  value: string,
  from: Date,
  timezone: string,
): string | { error: string } {
  if (!isValidTimezone(timezone)) return { error: `unknown timezone '${timezone}'` };
  switch (type) {
    case 'cron':
      return nextCronRun(value, from, timezone);
    case 'interval':
      return nextIntervalRun(value, from);
    case 'once':
      return onceInstant(value, timezone);
  }
}

function nextCronRun(value: string, from: Date, timezone: string): string | { error: string } {
  const expression = value.trim();
  const fields = expression.split(/\s+/);
  const isAlias = expression.startsWith('@');
  if (isAlias ? !CRON_ALIASES.has(expression) : fields.length !== 5) {
    return {
      error: `invalid cron expression '${value}': use 5 fields (minute hour day-of-month month day-of-week) or one of ${[...CRON_ALIASES].join(', ')}`,
    };
  }
  try {
    const parsed = CronExpressionParser.parse(expression, { currentDate: from, tz: timezone });
    return parsed.next().toDate().toISOString();
  } catch (err) {
    return { error: `invalid cron expression '${value}': ${(err as Error).message}` };
  }
}

function nextIntervalRun(value: string, from: Date): string | { error: string } {
  const text = value.trim();
  const ms = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(ms) || ms <= 0) {
    return { error: `interval must be a positive whole number of milliseconds, got '${value}'` };
  }
  if (ms > MAX_INTERVAL_MS) {
    return { error: `interval must be at most ${MAX_INTERVAL_MS} ms (ten years), got ${ms}` };
  }
  return new Date(from.getTime() + ms).toISOString();
}

/** ` (one minute)`, ` (2 seconds)`; empty when whole units don't fit. */
function describeDuration(ms: number): string {
  const [size, unit] = ms % 60_000 === 0 ? ([60_000, 'minute'] as const) : ([1000, 'second'] as const);
  if (ms % size !== 0) return '';
  const n = ms / size;
  return n === 1 ? ` (one ${unit})` : ` (${n} ${unit}s)`;
}

function onceInstant(value: string, timezone: string): string | { error: string } {
  const match = ONCE_PATTERN.exec(value.trim());
  if (!match) return { error: `${ONCE_FORMAT_ERROR}, got '${value}'` };
  const [year, month, day, hour, minute, second, fraction] = match.slice(1).map((part, i) => {
    if (part === undefined) return 0;
    return i === 6 ? Number(part.padEnd(3, '0')) : Number(part);
  }) as [number, number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    return { error: `once time '${value}' is not a real date and time` };
  }
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  return new Date(wallTimeToInstant(wall, timezone)).toISOString();
}

/**
 * Turns a wall-clock time (given as if it were UTC) into the instant it names in `timezone`.
 * Like Temporal's "compatible" rule: a time skipped by a DST change moves forward by the gap,
 * a time that happens twice means the earlier one.
 */
function wallTimeToInstant(wall: number, timezone: string): number {
  const day = 24 * 60 * 60 * 1000;
  const offsetBefore = offsetAt(wall - day, timezone);
  const candidates = [offsetBefore, offsetAt(wall, timezone), offsetAt(wall + day, timezone)]
    .map((offset) => wall - offset)
    .filter((instant) => instant + offsetAt(instant, timezone) === wall);
  if (candidates.length > 0) return Math.min(...candidates);
  return wall - offsetBefore;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** Wall-clock fields of an instant in `timezone`. */
function wallFields(instant: number, timezone: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const part of formatterFor(timezone).formatToParts(new Date(instant))) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  return fields;
}

/** How far `timezone` is ahead of UTC at `instant`, in ms. */
function offsetAt(instant: number, timezone: string): number {
  const f = wallFields(instant, timezone);
  const asUtc = Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!);
  return asUtc - (instant - (((instant % 1000) + 1000) % 1000));
}

/** `2026-11-23 15:30:00` in `timezone`, for messages and tables meant for people. */
export function formatLocal(date: Date, timezone: string): string {
  if (!isValidTimezone(timezone)) return date.toISOString();
  const f = wallFields(date.getTime(), timezone);
  const pad = (n: number | undefined) => String(n ?? 0).padStart(2, '0');
  return `${f.year}-${pad(f.month)}-${pad(f.day)} ${pad(f.hour)}:${pad(f.minute)}:${pad(f.second)}`;
}

export function isValidTimezone(timezone: string): boolean {
  if (formatters.has(timezone)) return true;
  try {
    formatterFor(timezone);
    return true;
  } catch {
    return false;
  }
}
