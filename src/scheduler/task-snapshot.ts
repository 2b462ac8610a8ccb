import type { Config } from '../config.js';
import { writeSnapshot } from '../ipc/to-agent.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

/** One task as the agent sees it in /workspace/inbox/current_tasks.json (read by `list_tasks`). */
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

/** current_tasks.json in the group's host-to-agent IPC part. */
export function writeTaskSnapshot(
  config: Pick<Config, 'ipcDir'>,
  group: RegisteredGroup,
  tasks: ScheduledTask[],
): void {
  writeSnapshot(config, group.folder, 'current_tasks.json', buildTaskSnapshot(group, tasks));
}
