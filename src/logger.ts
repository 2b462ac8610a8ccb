import pino from 'pino';

/** The one logger, on stderr: stdout carries protocols and CLI output. */
export const logger = pino(
  { level: process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'), base: undefined },
  pino.destination(2),
);
