import pino from 'pino';

/**
 * The one logger. It writes to stderr so that stdout stays free for commands whose output is a
 * protocol or a table (the CLI, the agent-runner's sentinels).
 */
export const logger = pino(
  { level: process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'), base: undefined },
  pino.destination(2),
);

export type Logger = typeof logger;
