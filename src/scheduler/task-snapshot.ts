import fs from 'node:fs';
import path from 'node:path';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

/** One task as the agent sees it in /workspace/ipc/current_tasks.json (read by `list_tasks`). */
export interface TaskSnapshotEntry {
  id: string;
  groupFolder: string;
  chatJid: string;
  prompt: string;
  schedule_type: ScheduledTask['scheduleType'];
  schedule_value: string;
  context_mode: ScheduledTask['contextMode'];
  status: ScheduledTask['status'];
  next_run: string | null;
  last_run: string | null;
  last_result: string | null;
}

/** Main administers every group, so it sees every task; any other group sees only its own. */
export function buildTaskSnapshot(group: RegisteredGroup, tasks: ScheduledTask[]): TaskSnapshotEntry[] {
  return tasks
    .filter((task) => group.isMain || task.groupFolder === group.folder)
    .map((task) => ({
      id: task.id,
      groupFolder: task.groupFolder,
      chatJid: task.chatJid,
      prompt: task.prompt,
      schedule_type: task.scheduleType,
      schedule_value: task.scheduleValue,
      context_mode: task.contextMode,
      status: task.status,
      next_run: task.nextRun,
      last_run: task.lastRun,
      last_result: task.lastResult,
    }));
}

/**
 * Writes `<ipcDir>/<folder>/current_tasks.json`. Written to a temporary name and renamed, so an
 * agent reading it mid-write sees the old list or the new one, never half of one.
 */
export function writeTaskSnapshot(ipcDir: string, group: RegisteredGroup, tasks: ScheduledTask[]): void {
  const dir = path.join(ipcDir, group.folder);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'current_tasks.json');
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(buildTaskSnapshot(group, tasks), null, 2) + '\n');
  fs.renameSync(tmp, file);
}
