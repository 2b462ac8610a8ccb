import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import {
  listTasks,
  refreshGroups,
  registerGroup,
  scheduleTask,
  sendMessage,
  taskAction,
  updateTask,
  type ToolContext,
  type ToolResult,
} from './mcp-tools.js';

/**
 * MCP stdio server `nanoclaw`, started by Claude Code inside the sandbox. Its tools reach the
 * host only by writing files into the group's IPC directory.
 */
function contextFromEnv(env: NodeJS.ProcessEnv): ToolContext {
  const chatJid = env.NANOCLAW_CHAT_JID;
  const groupFolder = env.NANOCLAW_GROUP_FOLDER;
  if (!chatJid || !groupFolder) throw new Error('NANOCLAW_CHAT_JID and NANOCLAW_GROUP_FOLDER must be set');
  return {
    chatJid,
    groupFolder,
    isMain: env.NANOCLAW_IS_MAIN === '1' || env.NANOCLAW_IS_MAIN === 'true',
    ipcDir: env.NANOCLAW_IPC_DIR || '/workspace/ipc',
    tz: env.TZ || undefined,
  };
}

function reply(run: () => ToolResult) {
  let result: ToolResult;
  try {
    result = run();
  } catch (err) {
    result = { text: `Failed: ${(err as Error).message}`, isError: true };
  }
  return {
    content: [{ type: 'text' as const, text: result.text }],
    ...(result.isError ? { isError: true } : {}),
  };
}

const scheduleType = z.enum(['cron', 'interval', 'once']);
const contextMode = z.enum(['group', 'isolated']);
const taskId = z.string().min(1).max(128).describe('The task id, e.g. task-1767000000000-ab12cd');

export function createNanoclawServer(ctx: ToolContext): McpServer {
  const server = new McpServer({ name: 'nanoclaw', version: '1.0.0' });

  server.registerTool(
    'send_message',
    {
      description:
        'Send a message to this chat right away, while you keep working (progress updates, or the result of a scheduled task). Your final answer is delivered anyway; do not repeat it here.',
      inputSchema: {
        text: z.string().min(1).describe('The message text'),
        sender: z
          .string()
          .min(1)
          .max(64)
          .optional()
          .describe('Name to speak under, for a member of an agent team'),
      },
    },
    (args) => reply(() => sendMessage(ctx, args)),
  );

  server.registerTool(
    'schedule_task',
    {
      description: [
        'Schedule a prompt to run automatically later or repeatedly; returns the task id.',
        'schedule_type cron: a cron expression in local time, e.g. "0 9 * * 1-5" (weekdays 09:00).',
        'interval: milliseconds between runs, e.g. "3600000".',
        'once: a local time WITHOUT "Z" or offset, e.g. "2026-11-23T15:30:00".',
        "context_mode group (default) continues this chat's conversation; isolated starts fresh, so the prompt must say everything.",
      ].join(' '),
      inputSchema: {
        prompt: z.string().min(1).describe('What the agent should do when the task runs'),
        schedule_type: scheduleType,
        schedule_value: z.string().min(1),
        context_mode: contextMode.optional(),
        target_group_jid: z
          .string()
          .min(1)
          .optional()
          .describe('Main group only: the chat to run the task for (default: this chat)'),
      },
    },
    (args) => reply(() => scheduleTask(ctx, args)),
  );

  server.registerTool(
    'list_tasks',
    { description: "List scheduled tasks (only this group's, unless this is the main group)." },
    () => reply(() => listTasks(ctx)),
  );

  for (const [name, verb] of [
    ['pause_task', 'Pause'],
    ['resume_task', 'Resume'],
    ['cancel_task', 'Cancel (delete)'],
  ] as const) {
    server.registerTool(
      name,
      { description: `${verb} a scheduled task.`, inputSchema: { task_id: taskId } },
      (args) => reply(() => taskAction(ctx, name, args.task_id)),
    );
  }

  server.registerTool(
    'update_task',
    {
      description:
        'Change a scheduled task: its prompt, schedule (same formats as schedule_task) or context mode.',
      inputSchema: {
        task_id: taskId,
        prompt: z.string().min(1).optional(),
        schedule_type: scheduleType.optional(),
        schedule_value: z.string().min(1).optional(),
        context_mode: contextMode.optional(),
      },
    },
    (args) => reply(() => updateTask(ctx, args)),
  );

  if (ctx.isMain) {
    server.registerTool(
      'register_group',
      {
        description:
          'Main group only: start answering in another chat. Chats the assistant can see are listed in /workspace/ipc/available_groups.json.',
        inputSchema: {
          jid: z.string().min(1).describe('The chat id'),
          name: z.string().min(1).describe('Display name'),
          folder: z.string().min(1).describe('Folder name for the group: letters, digits, _ or -'),
          trigger: z.string().min(1).describe('Trigger word, e.g. @Andy'),
          requires_trigger: z
            .boolean()
            .optional()
            .describe('false: answer every message, not only those starting with the trigger'),
        },
      },
      (args) => reply(() => registerGroup(ctx, args)),
    );
    server.registerTool(
      'refresh_groups',
      { description: 'Main group only: ask the host to refresh /workspace/ipc/available_groups.json.' },
      () => reply(() => refreshGroups(ctx)),
    );
  }
  return server;
}

async function main(): Promise<void> {
  const server = createNanoclawServer(contextFromEnv(process.env));
  await server.connect(new StdioServerTransport());
}

main().catch((err: unknown) => {
  process.stderr.write(`[nanoclaw-mcp] ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
