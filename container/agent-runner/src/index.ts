import path from 'node:path';
import { query } from '@anthropic-ai/claude-agent-sdk';
import { buildAgentOptions } from './agent-options.js';
import { startProxyForwarders } from './forwarders.js';
import { buildInitialPrompt, parseAgentInput, readStdin } from './input.js';
import { InputWatcher } from './input-watcher.js';
import { log, writeOutput } from './output.js';
import { resolveSandboxPaths } from './paths.js';
import { runQuery } from './query-runner.js';
import { buildSdkEnv } from './sdk-env.js';

/** Reads the input, runs queries until `_close`; 0 after a normal close, 1 on bad input or failure. */
async function main(): Promise<number> {
  const startedAt = Date.now();
  const parsed = parseAgentInput(await readStdin());
  if (!parsed.ok) {
    writeOutput({ status: 'error', result: null, error: parsed.error });
    return 1;
  }
  const input = parsed.input;
  const paths = resolveSandboxPaths();
  const forwarders = await startProxyForwarders(paths.proxyDir);
  const sdkEnv = buildSdkEnv(forwarders);
  const watcher = new InputWatcher(path.join(paths.inboxDir, 'input'));
  watcher.start();
  // From the process's start (Node boot, imports): for cold-start diagnosis.
  const processMs = Math.round(performance.now());
  log('started', {
    group: input.groupFolder,
    resume: Boolean(input.sessionId),
    ms: Date.now() - startedAt,
    processMs,
  });

  const deps = {
    query,
    watcher,
    writeOutput,
    options: (sessionId?: string, resumeAt?: string) =>
      buildAgentOptions({ input, paths, sdkEnv, sessionId, resumeAt }),
  };
  let prompt = buildInitialPrompt(input);
  let sessionId = input.sessionId;
  let resumeAt: string | undefined;
  let exitCode = 0;
  try {
    for (;;) {
      const outcome = await runQuery(prompt, sessionId, resumeAt, deps);
      if (outcome.resumeFailed) {
        // A session that cannot be resumed is replaced, so the message still gets an answer.
        log('starting a fresh session', { oldSessionId: sessionId });
        sessionId = resumeAt = undefined;
        prompt = outcome.inputs.join('\n\n');
        continue;
      }
      if (outcome.error) {
        if (!outcome.errorWritten) {
          const newSessionId = outcome.sessionId ?? sessionId;
          writeOutput({ status: 'error', result: null, newSessionId, error: outcome.error });
        }
        exitCode = 1;
        break;
      }
      sessionId = outcome.sessionId ?? sessionId;
      resumeAt = outcome.lastAssistantUuid ?? resumeAt;
      if (outcome.closed) break;
      // Claude Code exited without `_close`: the next input resumes the session.
      const next = await watcher.next();
      if (next.type === 'close') break;
      prompt = next.text;
    }
  } finally {
    watcher.stop();
    await forwarders.close();
  }
  log('finished', { exitCode });
  return exitCode;
}

// Without --init the runner is PID 1, which ignores SIGTERM by default: stop at once instead.
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    log('stopped by signal', { signal });
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  });

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    log('fatal', { error: err instanceof Error ? err.stack : String(err) });
    writeOutput({ status: 'error', result: null, error: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
  },
);
