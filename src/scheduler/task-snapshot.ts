import type { Config } from '../config.js';
import { TASKS_SNAPSHOT, type TaskSnapshot } from '../contract/ipc.js';
import { writeSnapshot } from '../ipc/to-agent.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

/** Main administers every group, so it sees every task. */
export const writeTaskSnapshot = (
  config: Pick<Config, 'ipcDir'>,
  group: RegisteredGroup,
  tasks: ScheduledTask[],
) =>
  writeSnapshot(
    config,
    group.folder,
    TASKS_SNAPSHOT,
    tasks.filter((t) => group.isMain || t.groupFolder === group.folder) satisfies TaskSnapshot,
  );
