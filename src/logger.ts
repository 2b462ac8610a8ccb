import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { styleText } from 'node:util';
import pino from 'pino';
import { readEnvFile } from './env-file.js';

const envFile = path.join(process.env.NANOCLAW_HOME || fileURLToPath(new URL('..', import.meta.url)), '.env');
const level =
  process.env.LOG_LEVEL || (process.env.VITEST ? 'silent' : (readEnvFile(envFile).LOG_LEVEL ?? 'info'));
const levels = [...Object.keys(pino.levels.values), 'silent'];
if (!levels.includes(level)) {
  process.stderr.write(`LOG_LEVEL=${level} is not a log level; use one of: ${levels.join(', ')}\n`);
  process.exit(1);
}

const paint = (color: 'gray' | 'green' | 'yellow' | 'red', text: string) =>
  process.env.NO_COLOR ? text : styleText(color, text, { validateStream: false });
const show = (v: unknown) =>
  typeof v === 'string' ? v : ((v as Error | null)?.message ?? JSON.stringify(v));
const COLORS = { 30: 'green', 40: 'yellow', 50: 'red', 60: 'red' } as const;

/** TTY: `09:24:52 INFO  message key=value`, else JSON; on stderr, as stdout carries protocols. */
const pretty = {
  write(line: string) {
    const { time, level: n, msg = '', ...context } = JSON.parse(line) as Record<string, unknown>;
    const color = COLORS[n as keyof typeof COLORS] ?? 'gray';
    const label = paint(color, pino.levels.labels[n as number]!.toUpperCase().padEnd(5));
    const pairs = Object.entries(context).map(([k, v]) => ` ${paint('gray', `${k}=`)}${show(v)}`);
    const clock = paint('gray', new Date(time as number).toTimeString().slice(0, 8));
    process.stderr.write(`${clock} ${label} ${String(msg)}${pairs.join('')}\n`);
  },
};

export const logger = pino({ level, base: undefined }, process.stderr.isTTY ? pretty : pino.destination(2));

/** Runs `fn`; a throw is logged as `message` and goes no further (the caller's work goes on). */
export function logFailure(
  message: string,
  context: object,
  fn: () => void,
  level: 'warn' | 'error' = 'warn',
) {
  try {
    fn();
  } catch (err) {
    logger[level]({ ...context, err: String(err) }, message);
  }
}
