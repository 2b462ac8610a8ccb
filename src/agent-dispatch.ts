import type { Store } from './db/store.js';
import { logger } from './logger.js';
import type { AgentOutput, AgentRunner, RegisteredGroup } from './types.js';

export interface DispatchDeps {
  store: Store;
  runner: AgentRunner;
  assistantName: string;
}

export interface DispatchOptions {
  chatJid: string;
  isScheduledTask?: boolean;
  /** `isolated` task runs start a fresh session and never replace the group's own. */
  useGroupSession: boolean;
  onResult(output: AgentOutput): Promise<void>;
}

/**
 * Runs one agent for a group with the group's session: the one place that knows how sessions are
 * resumed and recorded, shared by chat messages and scheduled tasks.
 */
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
    const output = await deps.runner.run(
      group,
      {
        prompt,
        ...(sessionId ? { sessionId } : {}),
        groupFolder: group.folder,
        chatJid: opts.chatJid,
        isMain: group.isMain,
        ...(opts.isScheduledTask ? { isScheduledTask: true } : {}),
        assistantName: deps.assistantName,
      },
      {
        onOutput: async (output) => {
          remember(output);
          await opts.onResult(output);
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
