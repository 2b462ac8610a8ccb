import type { Store } from './db/store.js';
import { logger } from './logger.js';
import { formatOutbound } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { TaskRunOutcome } from './scheduler/task-scheduler.js';
import type { AgentOutput, AgentRunner, RegisteredGroup, ScheduledTask } from './types.js';

interface DispatchDeps {
  store: Store;
  runner: AgentRunner;
  assistantName: string;
}

interface DispatchOptions {
  chatJid: string;
  isScheduledTask?: boolean;
  /** false: a fresh session that never replaces the group's own (`isolated` tasks). */
  useGroupSession: boolean;
  onResult(output: AgentOutput): Promise<void>;
}

/** Runs an agent for a group: the one place that resumes and records the group's session. */
export async function runAgentForGroup(
  { store, runner, assistantName }: DispatchDeps,
  group: RegisteredGroup,
  prompt: string,
  { chatJid, isScheduledTask, useGroupSession, onResult }: DispatchOptions,
): Promise<AgentOutput> {
  const sessionId = useGroupSession ? store.state.getSession(group.folder) : undefined;
  const remember = (output: AgentOutput) => {
    if (useGroupSession && output.newSessionId) store.state.setSession(group.folder, output.newSessionId);
  };
  try {
    const input = { prompt, ...(sessionId && { sessionId }), groupFolder: group.folder, chatJid };
    const output = await runner.run(
      group,
      { ...input, isMain: group.isMain, ...(isScheduledTask && { isScheduledTask }), assistantName },
      {
        onOutput: async (output) => {
          remember(output);
          await onResult(output);
        },
      },
    );
    remember(output);
    return output;
  } catch (err) {
    logger.error({ group: group.folder, err }, 'agent run threw');
    return { status: 'error', result: null, error: err instanceof Error ? err.message : String(err) };
  }
}

export async function runTaskInSandbox(
  deps: DispatchDeps & { send(jid: string, text: string): Promise<unknown> },
  task: ScheduledTask,
): Promise<TaskRunOutcome> {
  const group = deps.store.groups.byFolder(task.groupFolder);
  if (!group) return { status: 'error', result: null, error: `group ${task.groupFolder} is not registered` };
  let firstResult: string | null = null;
  const output = await runAgentForGroup(deps, group, formatTaskPrompt(task), {
    chatJid: task.chatJid,
    isScheduledTask: true,
    useGroupSession: task.contextMode === 'group',
    onResult: async (result) => {
      const text = formatOutbound(result.result);
      if (text) await deps.send(task.chatJid, text);
      firstResult ??= result.result;
    },
  });
  return {
    status: output.status,
    result: firstResult ?? output.result,
    ...(output.error && { error: output.error }),
  };
}
