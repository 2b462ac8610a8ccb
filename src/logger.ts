import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import pretty from 'pino-pretty';
import { readEnvFile } from './env-file.js';

const envFile = path.join(process.env.NANOCLAW_HOME || fileURLToPath(new URL('..', import.meta.url)), '.env');
const level =
  process.env.LOG_LEVEL || (process.env.VITEST ? 'silent' : (readEnvFile(envFile).LOG_LEVEL ?? 'info'));
const levels = [...Object.keys(pino.levels.values), 'silent'];
if (!levels.includes(level)) {
  process.stderr.write(`LOG_LEVEL=${level} is not a log level; use one of: ${levels.join(', ')}\n`);
  process.exit(1);
}

const show = (v: unknown) =>
  typeof v === 'string' ? v : ((v as Error | null)?.message ?? JSON.stringify(v));

/** On a terminal `09:24:52 INFO  message key=value`, synchronously; elsewhere JSON lines. Both on stderr: stdout carries protocols and CLI output. */
export const logger = pino(
  { level, base: undefined },
  process.stderr.isTTY
    ? pretty({
        sync: true,
        destination: 2,
        colorize: !process.env.NO_COLOR,
        customColors: 'message:reset',
        hideObject: true,
        ignore: 'time,level',
        messageFormat: (log, key, _label, { colors }) => {
          const { time, level: n, [key]: msg, ...context } = log as Record<string, unknown>;
          const label = pino.levels.labels[n as number]!.toUpperCase().padEnd(5);
          const color =
            n === 30 ? colors.green : Number(n) >= 50 ? colors.red : n === 40 ? colors.yellow : colors.gray;
          const pairs = Object.entries(context).map(([k, v]) => ` ${colors.gray(`${k}=`)}${show(v)}`);
          return `${colors.gray(new Date(time as number).toTimeString().slice(0, 8))} ${color(label)} ${String(msg ?? '')}${pairs.join('')}`;
        },
      })
    : pino.destination(2),
);
