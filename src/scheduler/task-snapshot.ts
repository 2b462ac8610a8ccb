import type { Config } from '../config.js';
import { TASKS_SNAPSHOT, type TaskSnapshot } from '../contract/ipc.js';
import { writeSnapshot } from '../ipc/to-agent.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

/** Main administers every group, so it sees every task. */
export function writeTaskSnapshot(
  config: Pick<Config, 'ipcDir'>,
  group: RegisteredGroup,
  tasks: ScheduledTask[],
): void {
  const snapshot: TaskSnapshot = tasks
    .filter((task) => group.isMain || task.groupFolder === group.folder)
    .map((t) => ({
      id: t.id,
      groupFolder: t.groupFolder,
      chatJid: t.chatJid,
      prompt: t.prompt,
      schedule_type: t.scheduleType,
      schedule_value: t.scheduleValue,
      context_mode: t.contextMode,
      status: t.status,
      next_run: t.nextRun,
      last_run: t.lastRun,
      last_result: t.lastResult,
    }));
  writeSnapshot(config, group.folder, TASKS_SNAPSHOT, snapshot);
}
