import fs from 'node:fs';
import path from 'node:path';
import { query, type Options } from '@anthropic-ai/claude-agent-sdk';
import { agentInputSchema, type AgentInput, zodProblems } from './contract/ipc.js';
import { InputWatcher } from './input-watcher.js';
import { nanoclawSdkServer } from './nanoclaw-tools.js';
import { log, writeOutput } from './output.js';
import { runQuery } from './query-runner.js';
import { startSdkEnv } from './sdk-env.js';
import { preCompactArchiver } from './transcript-archive.js';

// stdin may stay open after its one JSON value.
async function readInput(): Promise<AgentInput | string> {
  let data = '';
  let error = 'Unexpected end of JSON input';
  for await (const chunk of process.stdin.setEncoding('utf8')) {
    data += chunk as string;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch (err) {
      error = (err as Error).message;
      continue;
    }
    const parsed = agentInputSchema.safeParse(json);
    if (parsed.success) return parsed.data;
    return `invalid input: ${zodProblems(parsed.error)}`;
  }
  return `stdin is not JSON: ${error}`;
}

/** The sandbox's mounts, movable by environment (container/README.md). */
const dir = (name: string, fallback: string) => path.resolve(process.env[name] || fallback);
const GROUP_DIR = dir('NANOCLAW_GROUP_DIR', '/workspace/group');
const GLOBAL_DIR = dir('NANOCLAW_GLOBAL_DIR', '/workspace/global');
const IPC_DIR = dir('NANOCLAW_IPC_DIR', '/workspace/ipc');
const INBOX_DIR = dir('NANOCLAW_INBOX_DIR', '/workspace/inbox');
const PROXY_DIR = dir('NANOCLAW_PROXY_DIR', '/run/nanoclaw');
const EXTRA_DIR = dir('NANOCLAW_EXTRA_DIR', '/workspace/extra');

const ALLOWED_TOOLS = (
  'Bash Read Write Edit MultiEdit Glob Grep WebSearch WebFetch NotebookEdit Task TaskOutput TaskStop ' +
  'TeamCreate TeamDelete SendMessage TodoWrite ToolSearch Skill mcp__nanoclaw__*'
).split(' ');

const readOr = <T>(read: () => T, fallback: T): T => {
  try {
    return read();
  } catch {
    return fallback;
  }
};

function agentOptions(
  input: AgentInput,
  env: Record<string, string>,
  sessionId?: string,
  resumeAt?: string,
): Options {
  const globalMemory =
    !input.isMain && readOr(() => fs.readFileSync(path.join(GLOBAL_DIR, 'CLAUDE.md'), 'utf8').trim(), '');
  return {
    cwd: GROUP_DIR,
    env,
    ...(sessionId && { resume: sessionId, resumeSessionAt: resumeAt }),
    // The sandbox, not a permission prompt, is the boundary.
    permissionMode: 'bypassPermissions',
    allowDangerouslySkipPermissions: true,
    // 'user': the skills the host copies into ~/.claude/skills.
    settingSources: ['project', 'user'],
    systemPrompt: { type: 'preset', preset: 'claude_code', ...(globalMemory && { append: globalMemory }) },
    additionalDirectories: readOr(() => fs.readdirSync(EXTRA_DIR, { withFileTypes: true }), [])
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(EXTRA_DIR, entry.name))
      .sort(),
    allowedTools: ALLOWED_TOOLS,
    mcpServers: {
      nanoclaw: nanoclawSdkServer({ ...input, ipcDir: IPC_DIR, inboxDir: INBOX_DIR, groupDir: GROUP_DIR }),
    },
    hooks: {
      PreCompact: [
        { hooks: [preCompactArchiver(path.join(GROUP_DIR, 'conversations'), input.assistantName)] },
      ],
    },
    stderr: (data) => process.stderr.write(data),
  };
}

/** 0 after `_close`, 1 on bad input or failure. */
async function main(): Promise<number> {
  const startedAt = Date.now();
  const input = await readInput();
  if (typeof input === 'string') {
    writeOutput({ status: 'error', result: null, error: input });
    return 1;
  }
  const sdk = await startSdkEnv(PROXY_DIR);
  const watcher = new InputWatcher(path.join(INBOX_DIR, 'input'));
  // processMs counts from Node's boot: cold-start diagnosis.
  const [ms, processMs] = [Date.now() - startedAt, Math.round(performance.now())];
  log('started', { group: input.groupFolder, resume: !!input.sessionId, ms, processMs });

  let prompt = input.prompt;
  let firstPrefix = input.isScheduledTask
    ? '[SCHEDULED TASK - This is an automatic scheduled task, not a message from the user. Use the send_message tool if the user should hear about the outcome.]\n\n'
    : '';
  let sessionId = input.sessionId;
  let resumeAt: string | undefined;
  let exitCode = 0;
  try {
    for (;;) {
      const options = agentOptions(input, sdk.env, sessionId, resumeAt);
      const outcome = await runQuery(prompt, options, { query, watcher, writeOutput, firstPrefix });
      if (outcome.inputs.length > 0) firstPrefix = '';
      if (outcome.resumeFailed) {
        // Replace a session that cannot be resumed, so the message still gets an answer.
        log('starting a fresh session', { oldSessionId: sessionId });
        sessionId = resumeAt = undefined;
        prompt = outcome.inputs.join('\n\n');
        continue;
      }
      if (outcome.error) {
        exitCode = 1;
        break;
      }
      sessionId = outcome.sessionId;
      resumeAt = outcome.lastAssistantUuid ?? resumeAt;
      if (outcome.closed) break;
      // Claude Code exited without `_close`: the next input resumes.
      const next = await watcher.next();
      if (next.type === 'close') break;
      prompt = next.text;
    }
  } finally {
    watcher.stop();
    await sdk.close();
  }
  log('finished', { exitCode });
  return exitCode;
}

// Without --init the runner is PID 1, which ignores SIGTERM by default.
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
