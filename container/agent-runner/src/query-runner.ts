import type { Options, Query, SDKMessage, SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import type { InputWatcher } from './input-watcher.js';
import { log } from './log.js';
import { MessageStream } from './message-stream.js';
import type { RunnerOutput } from './output.js';

export type QueryFn = (params: { prompt: AsyncIterable<SDKUserMessage>; options: Options }) => Query;

export interface QueryDeps {
  query: QueryFn;
  watcher: Pick<InputWatcher, 'subscribe' | 'take'>;
  writeOutput(output: RunnerOutput): void;
  /** Options for one query; `sessionId` and `resumeAt` are set when resuming. */
  options(sessionId: string | undefined, resumeAt: string | undefined): Options;
}

export interface QueryOutcome {
  sessionId?: string;
  lastAssistantUuid?: string;
  /** `_close` arrived: the query ended because its prompt stream was closed. */
  closed: boolean;
  /** Results written to stdout. */
  results: number;
  /** Set when the query failed: an error result (already written) or a throw (not written). */
  error?: string;
  errorWritten: boolean;
  /**
   * The session could not be resumed: the query failed before any assistant message.
   * Nothing was written; `inputs` are the texts it consumed, to replay in a fresh session.
   */
  resumeFailed: boolean;
  inputs: string[];
}

function resultError(message: Extract<SDKMessage, { type: 'result' }>): string | undefined {
  if (message.subtype !== 'success') return message.errors.join('; ') || message.subtype;
  if (message.is_error) return message.result || 'the model call failed';
  return undefined;
}

/**
 * Runs one query: the prompt plus every follow-up until `_close`. Each result is written at once.
 * Between turns the prompt stream stays open and Claude Code idles, so a follow-up pushed into it
 * reaches the model in milliseconds instead of paying for a new Claude Code process and a session
 * resume. `_close` ends the stream and with it the query. An error result ends the query and is
 * reported as the run's failure.
 */
export async function runQuery(
  prompt: string,
  sessionId: string | undefined,
  resumeAt: string | undefined,
  deps: QueryDeps,
): Promise<QueryOutcome> {
  const stream = new MessageStream();
  const inputs = [prompt];
  stream.push(prompt);
  let closed = false;

  // Follow-ups join the running query; whatever arrives after the stream ended stays queued.
  const pump = () => {
    while (!stream.ended) {
      const event = deps.watcher.take();
      if (!event) return;
      if (event.type === 'close') {
        closed = true;
        stream.end();
        return;
      }
      inputs.push(event.text);
      stream.push(event.text);
    }
  };
  const unsubscribe = deps.watcher.subscribe(pump);

  const resuming = sessionId !== undefined;
  const outcome: QueryOutcome = {
    sessionId,
    closed: false,
    results: 0,
    errorWritten: false,
    resumeFailed: false,
    inputs,
  };
  let sessionLoaded = false;
  try {
    const messages = deps.query({ prompt: stream, options: deps.options(sessionId, resumeAt) });
    for await (const message of messages) {
      if (message.type === 'system' && message.subtype === 'init') {
        outcome.sessionId = message.session_id;
      } else if (message.type === 'assistant') {
        // Any assistant message, even a synthetic API-error one, means the session loaded.
        sessionLoaded = true;
        if (message.parent_tool_use_id === null) outcome.lastAssistantUuid = message.uuid;
      } else if (message.type === 'result') {
        outcome.sessionId = message.session_id;
        const error = resultError(message);
        if (error && resuming && !sessionLoaded && outcome.results === 0) {
          outcome.resumeFailed = true;
          log('resume failed', { sessionId, error });
          stream.end();
          continue;
        }
        outcome.results++;
        if (error) {
          deps.writeOutput({ status: 'error', result: null, newSessionId: outcome.sessionId, error });
          // The SDK throws right after an error result; the run ends here either way.
          outcome.error = error;
          outcome.errorWritten = true;
          stream.end();
          continue;
        }
        const text = message.subtype === 'success' ? message.result : '';
        deps.writeOutput({ status: 'success', result: text || null, newSessionId: outcome.sessionId });
      }
    }
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    if (resuming && !sessionLoaded && outcome.results === 0) {
      if (!outcome.resumeFailed) log('resume failed', { sessionId, error });
      outcome.resumeFailed = true;
    } else if (!outcome.error) {
      outcome.error = error;
    }
  } finally {
    unsubscribe();
    stream.end();
  }
  outcome.closed = closed;
  return outcome;
}
