import type { Store } from './db/store.js';
import { logger } from './logger.js';
import { formatOutbound } from './router.js';
import { formatTaskPrompt } from './scheduler/task-prompt.js';
import type { TaskRunOutcome } from './scheduler/task-scheduler.js';
import type { AgentOutput, AgentRunner, RegisteredGroup, ScheduledTask } from './types.js';

type Deps = { store: Store; runner: AgentRunner; assistantName: string };

/** The one place that resumes and records the group's session. */
export async function runAgentForGroup(
  { store, runner, assistantName }: Deps,
  group: RegisteredGroup,
  prompt: string,
  {
    chatJid,
    isScheduledTask,
    useGroupSession,
    onResult,
  }: {
    chatJid: string;
    isScheduledTask?: boolean;
    useGroupSession: boolean;
    onResult(output: AgentOutput): Promise<void>;
  },
): Promise<AgentOutput> {
  const { folder: groupFolder, isMain } = group;
  const sessionId = useGroupSession && store.state.getSession(groupFolder);
  const remember = ({ newSessionId }: AgentOutput) =>
    useGroupSession && newSessionId && store.state.setSession(groupFolder, newSessionId);
  const input = { prompt, groupFolder, chatJid, isMain, assistantName };
  try {
    const output = await runner.run(
      group,
      { ...input, ...(isScheduledTask && { isScheduledTask }), ...(sessionId && { sessionId }) },
      { onOutput: async (out) => (remember(out), onResult(out)) },
    );
    remember(output);
    return output;
  } catch (err) {
    logger.error({ group: groupFolder, err }, 'agent run threw');
    return { status: 'error', result: null, error: err instanceof Error ? err.message : String(err) };
  }
}

export async function runTaskInSandbox(
  deps: Deps & { send(jid: string, text: string): Promise<unknown> },
  task: ScheduledTask,
  prompt = formatTaskPrompt(task),
): Promise<TaskRunOutcome> {
  const group = deps.store.groups.byFolder(task.groupFolder);
  if (!group) return { status: 'error', result: null, error: `group ${task.groupFolder} is not registered` };
  let first: string | null = null;
  const { status, result, error } = await runAgentForGroup(deps, group, prompt, {
    chatJid: task.chatJid,
    isScheduledTask: true,
    useGroupSession: task.contextMode === 'group',
    onResult: async ({ result }) => {
      const text = formatOutbound(result);
      if (text) await deps.send(task.chatJid, text);
      first ??= result;
    },
  });
  return { status, result: first ?? result, ...(error && { error }) };
}
