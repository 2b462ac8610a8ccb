import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InputWatcher } from '../../container/agent-runner/src/input-watcher.js';
import type { SandboxOutput } from '../../src/contract/ipc.js';
import { runQuery, type QueryDeps } from '../../container/agent-runner/src/query-runner.js';

/**
 * The agent-runner's query loop with a stand-in for the SDK's query(): it answers each user
 * message the way Claude Code does in streaming-input mode (an assistant message, then a result)
 * and ends only when its prompt stream ends. The input files are real, read by the real watcher.
 */

const dirs: string[] = [];
const watchers: InputWatcher[] = [];

afterEach(() => {
  for (const w of watchers.splice(0)) w.stop();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function inputDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-runner-'));
  dirs.push(dir);
  return dir;
}

function writeInput(dir: string, text: string): void {
  const file = path.join(dir, `${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ type: 'message', text }));
  fs.renameSync(`${file}.tmp`, file);
}

// The SDK's types, reached through the runner (the SDK is the runner's dependency, not the host's).
type QueryFn = QueryDeps['query'];
type Query = ReturnType<QueryFn>;
type SDKMessage = Query extends AsyncGenerator<infer M> ? M : never;
type SDKUserMessage = Parameters<QueryFn>[0]['prompt'] extends AsyncIterable<infer M> ? M : never;

const textOf = (m: SDKUserMessage) => String(m.message.content);

interface FakeSdk {
  queries: number;
  prompts: string[];
  /** Prompts a hook blocked before the model. */
  blocked: number;
  /** Resolves once the prompt stream of the latest query has ended. */
  streamEnded: Promise<void>;
  query: QueryFn;
}

/** Answers every prompt with `answer(text)`; an answer of null is an error result. */
function fakeSdk(answer: (text: string) => string | null): FakeSdk {
  let markEnded: () => void = () => {};
  const sdk: FakeSdk = {
    queries: 0,
    prompts: [],
    blocked: 0,
    streamEnded: new Promise<void>((resolve) => (markEnded = resolve)),
    query: ({ prompt, options }) => {
      sdk.queries++;
      // Like Claude Code: a prompt its UserPromptSubmit hook blocks ends the turn without the model.
      const blocked = async (text: string) => {
        for (const matcher of options.hooks?.UserPromptSubmit ?? [])
          for (const hook of matcher.hooks) {
            const input = { hook_event_name: 'UserPromptSubmit', prompt: text } as Parameters<typeof hook>[0];
            const out = await hook(input, undefined, { signal: new AbortController().signal });
            if ('decision' in out && out.decision === 'block') return true;
          }
        return false;
      };
      async function* run(): AsyncGenerator<SDKMessage> {
        yield { type: 'system', subtype: 'init', session_id: 'session-1' } as SDKMessage;
        let n = 0;
        for await (const message of prompt) {
          const text = textOf(message);
          if (await blocked(text)) {
            sdk.blocked++;
            const result = { type: 'result', subtype: 'success', is_error: false, result: '', num_turns: 0 };
            yield { ...result, session_id: 'session-1' } as unknown as SDKMessage;
            continue;
          }
          sdk.prompts.push(text);
          const reply = answer(text);
          yield {
            type: 'assistant',
            uuid: `assistant-${++n}`,
            parent_tool_use_id: null,
            session_id: 'session-1',
          } as unknown as SDKMessage;
          yield (reply === null
            ? {
                type: 'result',
                subtype: 'success',
                is_error: true,
                result: 'model said no',
                session_id: 'session-1',
              }
            : {
                type: 'result',
                subtype: 'success',
                is_error: false,
                result: reply,
                num_turns: 1,
                session_id: 'session-1',
              }) as unknown as SDKMessage;
        }
        markEnded();
      }
      return run() as unknown as Query;
    },
  };
  return sdk;
}

function deps(sdk: FakeSdk, dir: string, outputs: SandboxOutput[]): QueryDeps {
  const watcher = new InputWatcher(dir, 50);
  watchers.push(watcher);
  return { query: sdk.query, watcher, writeOutput: (o) => outputs.push(o) };
}

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('agent-runner query loop', () => {
  it('keeps the query open after a result, so follow-ups go into the same Claude Code process', async () => {
    const dir = inputDir();
    const sdk = fakeSdk((text) => `re: ${text}`);
    const outputs: SandboxOutput[] = [];
    const outcome = runQuery('first', {}, deps(sdk, dir, outputs));

    await until('the first result', () => outputs.length === 1);
    // Idle after the answer: the prompt stream is still open, waiting for input.
    writeInput(dir, 'second');
    await until('the follow-up result', () => outputs.length === 2);
    writeInput(dir, 'third');
    await until('the next follow-up result', () => outputs.length === 3);
    expect(sdk.queries).toBe(1);

    fs.writeFileSync(path.join(dir, '_close'), '');
    const result = await outcome;
    await sdk.streamEnded;
    expect(result).toMatchObject({ closed: true, results: 3, sessionId: 'session-1', resumeFailed: false });
    expect(result.lastAssistantUuid).toBe('assistant-3');
    expect(sdk.prompts).toEqual(['first', 'second', 'third']);
    expect(outputs.map((o) => o.result)).toEqual(['re: first', 're: second', 're: third']);
    expect(outputs.every((o) => o.status === 'success' && o.newSessionId === 'session-1')).toBe(true);
  });

  it('ends the query at an error result and writes that error once', async () => {
    const dir = inputDir();
    const sdk = fakeSdk(() => null);
    const outputs: SandboxOutput[] = [];
    const result = await runQuery('hello', {}, deps(sdk, dir, outputs));
    await sdk.streamEnded;
    expect(result).toMatchObject({ closed: false, error: 'model said no', results: 1 });
    expect(outputs).toEqual([
      { status: 'error', result: null, newSessionId: 'session-1', error: 'model said no' },
    ]);
  });

  it('closes without a turn when `_close` is already waiting', async () => {
    const dir = inputDir();
    fs.writeFileSync(path.join(dir, '_close'), '');
    const sdk = fakeSdk((text) => `re: ${text}`);
    const outputs: SandboxOutput[] = [];
    const result = await runQuery('only this', {}, deps(sdk, dir, outputs));
    // The prompt already pushed is still answered; nothing after `_close` is read.
    expect(result.closed).toBe(true);
    expect(sdk.prompts).toEqual(['only this']);
    expect(outputs.map((o) => o.result)).toEqual(['re: only this']);
  });

  it("runs a warm start's first turn through a blocked prompt: no model turn, no output", async () => {
    const dir = inputDir();
    const sdk = fakeSdk((text) => `re: ${text}`);
    const outputs: SandboxOutput[] = [];
    const outcome = runQuery('', {}, { ...deps(sdk, dir, outputs), firstPrefix: '[TASK] ' });
    await until('the warm-up turn', () => sdk.blocked === 1);
    expect(outputs).toEqual([]);
    writeInput(dir, 'first');
    await until('the answer', () => outputs.length === 1);
    writeInput(dir, 'second');
    await until('the follow-up answer', () => outputs.length === 2);
    fs.writeFileSync(path.join(dir, '_close'), '');
    const result = await outcome;
    // The first input carries the task prefix; the model never saw the warm-up.
    expect(sdk.prompts).toEqual(['[TASK] first', 'second']);
    expect(result).toMatchObject({ closed: true, results: 2, inputs: ['[TASK] first', 'second'] });
    expect(outputs.map((o) => o.result)).toEqual(['re: [TASK] first', 're: second']);
  });
});
