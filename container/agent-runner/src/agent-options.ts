import fs from 'node:fs';
import path from 'node:path';
import type { Options } from '@anthropic-ai/claude-agent-sdk';
import { nanoclawSdkServer } from './in-process-mcp.js';
import type { AgentInput } from './input.js';
import type { SandboxPaths } from './paths.js';
import { preCompactArchiver } from './transcript-archive.js';

/** Tools the agent may use without asking; the sandbox, not a permission prompt, is the boundary. */
export const ALLOWED_TOOLS = [
  'Bash',
  'Read',
  'Write',
  'Edit',
  'MultiEdit',
  'Glob',
  'Grep',
  'WebSearch',
  'WebFetch',
  'Task',
  'TaskOutput',
  'TaskStop',
  'TeamCreate',
  'TeamDelete',
  'SendMessage',
  'TodoWrite',
  'ToolSearch',
  'Skill',
  'NotebookEdit',
  'mcp__nanoclaw__*',
];

export interface AgentOptionsContext {
  input: AgentInput;
  paths: SandboxPaths;
  sdkEnv: Record<string, string>;
  sessionId?: string;
  /** UUID of the last assistant message to resume from; only used together with sessionId. */
  resumeAt?: string;
}

/** Global memory is shared read-only context for every non-main group. */
export function readGlobalMemory(input: AgentInput, paths: SandboxPaths): string | undefined {
  if (input.isMain) return undefined;
  try {
    const text = fs.readFileSync(path.join(paths.globalDir, 'CLAUDE.md'), 'utf8').trim();
    return text.length > 0 ? text : undefined;
  } catch {
    return undefined;
  }
}

export function listExtraDirs(extraDir: string): string[] {
  try {
    return fs
      .readdirSync(extraDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(extraDir, entry.name))
      .sort();
  } catch {
    return [];
  }
}

export function buildAgentOptions(ctx: AgentOptionsContext): Options {
  const { input, paths } = ctx;
  const globalMemory = readGlobalMemory(input, paths);
  return {
    cwd: paths.groupDir,
    env: ctx.sdkEnv,
    ...(ctx.sessionId
      ? { resume: ctx.sessionId, ...(ctx.resumeAt ? { resumeSessionAt: ctx.resumeAt } : {}) }
      : {}),
    permissionMode: 'bypassPermissions',
    allowDangerouslySkipPermissions: true,
    // 'user' loads the container skills the host copies into ~/.claude/skills (the session dir).
    settingSources: ['project', 'user'],
    systemPrompt: {
      type: 'preset',
      preset: 'claude_code',
      ...(globalMemory ? { append: globalMemory } : {}),
    },
    additionalDirectories: listExtraDirs(paths.extraDir),
    allowedTools: ALLOWED_TOOLS,
    mcpServers: {
      nanoclaw: nanoclawSdkServer({
        chatJid: input.chatJid,
        groupFolder: input.groupFolder,
        isMain: input.isMain,
        ipcDir: paths.ipcDir,
        inboxDir: paths.inboxDir,
        // Cron expressions are checked in the agent's timezone.
        tz: ctx.sdkEnv.TZ || undefined,
      }),
    },
    hooks: {
      PreCompact: [
        {
          hooks: [preCompactArchiver(path.join(paths.groupDir, 'conversations'), input.assistantName)],
        },
      ],
    },
    stderr: (data: string) => process.stderr.write(data),
  };
}
