import type { Config } from './config.js';
import type { Store } from './db/store.js';
import { runAgentForGroup } from './agent-dispatch.js';
import type { Outbound } from './outbound.js';
import { formatOutbound } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { AgentRunner, ScheduledTask } from './types.js';

export interface TaskRunDeps {
  store: Store;
  runner: AgentRunner;
  outbound: Pick<Outbound, 'send'>;
  config: Pick<Config, 'assistantName'>;
}

/**
 * One scheduled task in its own sandbox. `group` context resumes the group's session; `isolated`
 * starts fresh and leaves the group's session alone. Results go to the task's chat.
 */
export async function runTaskInSandbox(
  deps: TaskRunDeps,
  task: ScheduledTask,
): Promise<{ status: 'success' | 'error'; result: string | null; error?: string }> {
  const group = deps.store.groups.byFolder(task.groupFolder);
  if (!group) return { status: 'error', result: null, error: `group ${task.groupFolder} is not registered` };
  let firstResult: string | null = null;
  const output = await runAgentForGroup(
    { store: deps.store, runner: deps.runner, assistantName: deps.config.assistantName },
    group,
    formatTaskPrompt(task),
    {
      chatJid: task.chatJid,
      isScheduledTask: true,
      useGroupSession: task.contextMode === 'group',
      onResult: async (result) => {
        const text = formatOutbound(result.result);
        if (text) await deps.outbound.send(task.chatJid, text);
        firstResult ??= result.result;
      },
    },
  );
  return {
    status: output.status,
    result: firstResult ?? output.result,
    ...(output.error ? { error: output.error } : {}),
  };
}
