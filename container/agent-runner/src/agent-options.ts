import fs from 'node:fs';
import path from 'node:path';
import type { Options } from '@anthropic-ai/claude-agent-sdk';
import type { AgentInput } from './input.js';
import { nanoclawSdkServer } from './nanoclaw-tools.js';
import type { SandboxPaths } from './paths.js';
import { preCompactArchiver } from './transcript-archive.js';

/** Tools the agent may use without asking; the sandbox, not a permission prompt, is the boundary. */
const ALLOWED_TOOLS = [
  ...['Bash', 'Read', 'Write', 'Edit', 'MultiEdit', 'Glob', 'Grep', 'WebSearch', 'WebFetch', 'NotebookEdit'],
  ...[
    'Task',
    'TaskOutput',
    'TaskStop',
    'TeamCreate',
    'TeamDelete',
    'SendMessage',
    'TodoWrite',
    'ToolSearch',
    'Skill',
  ],
  'mcp__nanoclaw__*',
];

const readOr = <T>(read: () => T, fallback: T): T => {
  try {
    return read();
  } catch {
    return fallback;
  }
};

export function buildAgentOptions(ctx: {
  input: AgentInput;
  paths: SandboxPaths;
  sdkEnv: Record<string, string>;
  sessionId?: string;
  resumeAt?: string;
}): Options {
  const { input, paths } = ctx;
  const globalMemory = input.isMain
    ? ''
    : readOr(() => fs.readFileSync(path.join(paths.globalDir, 'CLAUDE.md'), 'utf8').trim(), '');
  const extraDirs = readOr(() => fs.readdirSync(paths.extraDir, { withFileTypes: true }), [])
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(paths.extraDir, entry.name))
    .sort();
  return {
    cwd: paths.groupDir,
    env: ctx.sdkEnv,
    ...(ctx.sessionId ? { resume: ctx.sessionId, resumeSessionAt: ctx.resumeAt } : {}),
    permissionMode: 'bypassPermissions',
    allowDangerouslySkipPermissions: true,
    // 'user' loads the container skills the host copies into ~/.claude/skills (the session dir).
    settingSources: ['project', 'user'],
    systemPrompt: {
      type: 'preset',
      preset: 'claude_code',
      ...(globalMemory ? { append: globalMemory } : {}),
    },
    additionalDirectories: extraDirs,
    allowedTools: ALLOWED_TOOLS,
    mcpServers: {
      nanoclaw: nanoclawSdkServer({
        chatJid: input.chatJid,
        groupFolder: input.groupFolder,
        isMain: input.isMain,
        ipcDir: paths.ipcDir,
        inboxDir: paths.inboxDir,
        tz: ctx.sdkEnv.TZ || undefined,
        minIntervalMs: Number(process.env.NANOCLAW_MIN_TASK_INTERVAL_MS) || undefined,
      }),
    },
    hooks: {
      PreCompact: [
        { hooks: [preCompactArchiver(path.join(paths.groupDir, 'conversations'), input.assistantName)] },
      ],
    },
    stderr: (data: string) => process.stderr.write(data),
  };
}
