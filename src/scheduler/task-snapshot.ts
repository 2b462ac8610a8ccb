import type { Config } from '../config.js';
import { TASKS_SNAPSHOT, type TaskSnapshot } from '../contract/ipc.js';
import { writeSnapshot } from '../ipc/to-agent.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

/** Main administers every group, so it sees every task. */
export function writeTaskSnapshot(
  config: Pick<Config, 'ipcDir'>,
  group: RegisteredGroup,
  tasks: ScheduledTask[],
) {
  const snapshot: TaskSnapshot = tasks
    .filter((task) => group.isMain || task.groupFolder === group.folder)
    .map(({ id, groupFolder, chatJid, prompt, status, ...t }) => ({
      id,
      groupFolder,
      chatJid,
      prompt,
      schedule_type: t.scheduleType,
      schedule_value: t.scheduleValue,
      context_mode: t.contextMode,
      status,
      next_run: t.nextRun,
      last_run: t.lastRun,
      last_result: t.lastResult,
    }));
  writeSnapshot(config, group.folder, TASKS_SNAPSHOT, snapshot);
}
