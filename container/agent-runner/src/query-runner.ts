import type { Options, Query, SDKMessage, SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import type { InputWatcher } from './input-watcher.js';
import { MessageStream } from './message-stream.js';
import { log, type RunnerOutput } from './output.js';

export interface QueryDeps {
  query: (params: { prompt: AsyncIterable<SDKUserMessage>; options: Options }) => Query;
  watcher: Pick<InputWatcher, 'subscribe' | 'take'>;
  writeOutput(output: RunnerOutput): void;
  options(sessionId: string | undefined, resumeAt: string | undefined): Options;
}

export interface QueryOutcome {
  sessionId?: string;
  lastAssistantUuid?: string;
  /** `_close` arrived. */
  closed: boolean;
  results: number;
  /** An error result (already written) or a throw (not written). */
  error?: string;
  errorWritten: boolean;
  /** Failed before any assistant message: nothing written, `inputs` are to replay in a fresh session. */
  resumeFailed: boolean;
  inputs: string[];
}

function resultError(message: Extract<SDKMessage, { type: 'result' }>): string | undefined {
  if (message.subtype !== 'success') return message.errors.join('; ') || message.subtype;
  if (message.is_error) return message.result || 'the model call failed';
}

/**
 * One query: the prompt plus every follow-up until `_close`, each result written at once. Between
 * turns the prompt stream stays open and Claude Code idles, so a follow-up reaches the model in
 * milliseconds instead of paying for a new process and a session resume.
 */
export async function runQuery(
  prompt: string,
  sessionId: string | undefined,
  resumeAt: string | undefined,
  deps: QueryDeps,
): Promise<QueryOutcome> {
  const stream = new MessageStream();
  stream.push(prompt);
  const outcome: QueryOutcome = {
    sessionId,
    closed: false,
    results: 0,
    errorWritten: false,
    resumeFailed: false,
    inputs: [prompt],
  };
  // Follow-ups join the running query; whatever arrives after the stream ended stays queued.
  const unsubscribe = deps.watcher.subscribe(() => {
    for (let event = stream.ended ? undefined : deps.watcher.take(); event; event = deps.watcher.take()) {
      if (event.type === 'close') {
        outcome.closed = true;
        return stream.end();
      }
      outcome.inputs.push(event.text);
      stream.push(event.text);
    }
  });
  // Any assistant message, even a synthetic API-error one, means the session loaded.
  let sessionLoaded = false;
  const resumeFailed = () => sessionId !== undefined && !sessionLoaded && outcome.results === 0;
  try {
    for await (const message of deps.query({ prompt: stream, options: deps.options(sessionId, resumeAt) })) {
      if (message.type === 'system' && message.subtype === 'init') {
        outcome.sessionId = message.session_id;
      } else if (message.type === 'assistant') {
        sessionLoaded = true;
        if (message.parent_tool_use_id === null) outcome.lastAssistantUuid = message.uuid;
      } else if (message.type === 'result') {
        outcome.sessionId = message.session_id;
        const error = resultError(message);
        if (error && resumeFailed()) {
          outcome.resumeFailed = true;
          log('resume failed', { sessionId, error });
        } else if (error) {
          outcome.results++;
          deps.writeOutput({ status: 'error', result: null, newSessionId: outcome.sessionId, error });
          // The SDK throws right after an error result; the run ends here either way.
          outcome.error = error;
          outcome.errorWritten = true;
        } else {
          outcome.results++;
          const text = message.subtype === 'success' ? message.result : '';
          deps.writeOutput({ status: 'success', result: text || null, newSessionId: outcome.sessionId });
          continue;
        }
        stream.end();
      }
    }
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    if (resumeFailed()) {
      if (!outcome.resumeFailed) log('resume failed', { sessionId, error });
      outcome.resumeFailed = true;
    } else outcome.error ??= error;
  } finally {
    unsubscribe();
    stream.end();
  }
  return outcome;
}
