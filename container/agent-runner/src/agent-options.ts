import fs from 'node:fs';
import path from 'node:path';
import type { Options } from '@anthropic-ai/claude-agent-sdk';
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
  /** Absolute path of the compiled MCP server (dist/mcp-server.js). */
  mcpServerPath: string;
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
    settingSources: ['project'],
    systemPrompt: {
      type: 'preset',
      preset: 'claude_code',
      ...(globalMemory ? { append: globalMemory } : {}),
    },
    additionalDirectories: listExtraDirs(paths.extraDir),
    allowedTools: ALLOWED_TOOLS,
    mcpServers: {
      nanoclaw: {
        type: 'stdio',
        command: process.execPath,
        args: [ctx.mcpServerPath],
        env: {
          NANOCLAW_CHAT_JID: input.chatJid,
          NANOCLAW_GROUP_FOLDER: input.groupFolder,
          NANOCLAW_IS_MAIN: input.isMain ? '1' : '0',
          NANOCLAW_IPC_DIR: paths.ipcDir,
          // Cron expressions are checked in the agent's timezone.
          ...(ctx.sdkEnv.TZ ? { TZ: ctx.sdkEnv.TZ } : {}),
        },
        // MCP tools are otherwise deferred behind ToolSearch; ours are few and always wanted.
        alwaysLoad: true,
      },
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
