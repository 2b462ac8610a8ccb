/**
 * Diagnostics go to stderr: stdout carries the framed results the host parses, so nothing else
 * of ours may be written there.
 */
export function log(message: string, context?: Record<string, unknown>): void {
  const suffix = context ? ` ${JSON.stringify(context)}` : '';
  process.stderr.write(`[agent-runner] ${message}${suffix}\n`);
}
