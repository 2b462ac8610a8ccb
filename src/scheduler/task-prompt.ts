import type { ScheduledTask } from '../types.js';

/** The first line tells the agent nobody just wrote this: act on the task and report. */
export function formatTaskPrompt(task: Pick<ScheduledTask, 'id' | 'prompt'>): string {
  return `[Scheduled task ${task.id} — automatic, not a message from the user]\n${task.prompt}`;
}
