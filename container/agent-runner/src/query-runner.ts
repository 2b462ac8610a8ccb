import { randomUUID } from 'node:crypto';
import type { HookCallback, Options, Query, SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import type { InputWatcher } from './input-watcher.js';
import type { SandboxOutput } from './contract/ipc.js';
import { log } from './output.js';

export interface QueryDeps {
  query: (params: { prompt: AsyncIterable<SDKUserMessage>; options: Options }) => Query;
  watcher: Pick<InputWatcher, 'onEvents' | 'take'>;
  writeOutput(output: SandboxOutput): void;
  /** Before the first input, whether the prompt or (warm start) the first follow-up. */
  firstPrefix?: string;
}

// The prompt and every follow-up until `_close` in one query: between turns Claude Code idles, so a
// follow-up costs no new process and no session resume. `resumeFailed`: nothing was written, replay
// `inputs` in a fresh session. `error` was written.
export async function runQuery(prompt: string, options: Options, deps: QueryDeps) {
  const sessionId = options.resume;
  const outcome = {
    sessionId,
    lastAssistantUuid: undefined as string | undefined,
    closed: false,
    results: 0,
    error: undefined as string | undefined,
    resumeFailed: false,
    inputs: [] as string[],
  };
  const user = (content: string): SDKUserMessage => ({
    type: 'user',
    message: { role: 'user', content },
    parent_tool_use_id: null,
  });
  const queue: SDKUserMessage[] = [];
  let ended = false;
  let wake = () => {};
  let prefix = deps.firstPrefix ?? '';
  const push = (raw: string) => {
    const text = prefix + raw;
    prefix = '';
    outcome.inputs.push(text);
    queue.push(user(text));
    wake();
  };
  const end = () => {
    ended = true;
    wake();
  };
  async function* stream() {
    for (;;) {
      const next = queue.shift();
      if (next) yield next;
      else if (ended) return;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  // Warm start: a first turn that a hook blocks. Claude Code runs (and compiles) its whole input path
  // once, so the real first message costs what a follow-up does; the blocked prompt never reaches the
  // model nor a resumed context. Its empty result is not an answer.
  let warmUps = 0;
  if (prompt) push(prompt);
  else {
    const warmUp = `nanoclaw-warm-up-${randomUUID()}`;
    const block: HookCallback = async (input) =>
      input.hook_event_name === 'UserPromptSubmit' && input.prompt === warmUp
        ? { decision: 'block', reason: 'warm-up' }
        : {};
    const hooks = options.hooks ?? {};
    options = {
      ...options,
      hooks: { ...hooks, UserPromptSubmit: [...(hooks.UserPromptSubmit ?? []), { hooks: [block] }] },
    };
    queue.push(user(warmUp));
    warmUps = 1;
  }
  // What arrives after the stream ended stays queued.
  const takeInput = () => {
    for (let event = ended ? undefined : deps.watcher.take(); event; event = deps.watcher.take()) {
      if (event.type === 'close') {
        outcome.closed = true;
        return end();
      }
      push(event.text);
    }
  };
  deps.watcher.onEvents = takeInput;
  takeInput();
  // Any assistant message, even a synthetic API-error one, means the session loaded.
  let loaded = false;
  const fail = (error: string) => {
    if (sessionId !== undefined && !loaded && outcome.results === 0) {
      if (!outcome.resumeFailed) log('resume failed', { sessionId, error });
      outcome.resumeFailed = true;
    } else if (!outcome.error) {
      outcome.results++;
      outcome.error = error;
      deps.writeOutput({ status: 'error', result: null, newSessionId: outcome.sessionId, error });
    }
  };
  try {
    const q = deps.query({ prompt: stream(), options });
    // Warm start: the MCP handshake, skill listing and context sizing happen now (no model request).
    if (!prompt) {
      q.mcpServerStatus?.().catch(() => undefined);
      q.supportedCommands?.().catch(() => undefined);
      q.getContextUsage?.({ detail: 'summary' }).catch(() => undefined);
    }
    for await (const message of q) {
      if (message.type === 'system' && message.subtype === 'init') outcome.sessionId = message.session_id;
      else if (message.type === 'assistant') {
        loaded = true;
        if (message.parent_tool_use_id === null) outcome.lastAssistantUuid = message.uuid;
      } else if (message.type === 'result') {
        outcome.sessionId = message.session_id;
        if (warmUps > 0 && message.subtype === 'success' && message.num_turns === 0) {
          warmUps--;
          continue;
        }
        if (message.subtype === 'success' && !message.is_error) {
          outcome.results++;
          deps.writeOutput({
            status: 'success',
            result: message.result || null,
            newSessionId: outcome.sessionId,
          });
        } else {
          // The SDK throws right after an error result.
          fail(
            message.subtype === 'success'
              ? message.result || 'the model call failed'
              : message.errors.join('; ') || message.subtype,
          );
          end();
        }
      }
    }
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  } finally {
    deps.watcher.onEvents = undefined;
    end();
  }
  return outcome;
}
