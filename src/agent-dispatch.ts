import type { Store } from './db/store.js';
import { logger } from './logger.js';
import { formatOutbound } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { AgentOutput, AgentRunner, RegisteredGroup, ScheduledTask } from './types.js';

export interface DispatchDeps {
  store: Store;
  runner: AgentRunner;
  assistantName: string;
}

export interface DispatchOptions {
  chatJid: string;
  isScheduledTask?: boolean;
  /** false: a fresh session that never replaces the group's own (`isolated` tasks). */
  useGroupSession: boolean;
  onResult(output: AgentOutput): Promise<void>;
}

/** Runs an agent for a group: the one place that resumes and records the group's session. */
export async function runAgentForGroup(
  deps: DispatchDeps,
  group: RegisteredGroup,
  prompt: string,
  opts: DispatchOptions,
): Promise<AgentOutput> {
  const sessionId = opts.useGroupSession ? deps.store.state.getSession(group.folder) : undefined;
  const remember = (output: AgentOutput) => {
    if (opts.useGroupSession && output.newSessionId)
      deps.store.state.setSession(group.folder, output.newSessionId);
  };
  try {
    const input = {
      prompt,
      ...(sessionId ? { sessionId } : {}),
      groupFolder: group.folder,
      chatJid: opts.chatJid,
      isMain: group.isMain,
      ...(opts.isScheduledTask ? { isScheduledTask: true } : {}),
      assistantName: deps.assistantName,
    };
    const output = await deps.runner.run(group, input, {
      onOutput: async (output) => {
        remember(output);
        await opts.onResult(output);
      },
    });
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
): Promise<{ status: 'success' | 'error'; result: string | null; error?: string }> {
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
    ...(output.error ? { error: output.error } : {}),
  };
}
