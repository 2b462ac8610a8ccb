import type { ScheduledTask } from '../types.js';

/**
 * The prompt a scheduled run starts with. The first line tells the agent that nobody just wrote
 * this: it is the task it (or the person) scheduled earlier, so it should act on it and report,
 * not answer it like a chat message.
 */
export function formatTaskPrompt(task: Pick<ScheduledTask, 'id' | 'prompt'>): string {
  return `[Scheduled task ${task.id} — automatic, not a message from the user]\n${task.prompt}`;
}
