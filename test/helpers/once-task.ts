import type { ScheduledTask } from '../../src/types.js';

/** An active `once` task of a group, due at `due` (ms since the epoch). */
export const onceTask = (id: string, folder: string, prompt: string, due: number): ScheduledTask => ({
  id,
  groupFolder: folder,
  chatJid: `local:${folder}`,
  prompt,
  scheduleType: 'once',
  scheduleValue: new Date(due).toISOString().slice(0, 23),
  contextMode: 'isolated',
  nextRun: new Date(due).toISOString(),
  lastRun: null,
  lastResult: null,
  status: 'active',
  createdAt: new Date().toISOString(),
});
