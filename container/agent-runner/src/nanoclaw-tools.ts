// The zod 3 API (shipped inside zod 4) loads in a quarter of the time of zod 4's many modules, and
// the runner loads it on every cold start; the SDK and the MCP SDK accept either.
import { z } from 'zod/v3';
import type { ToolContext, ToolResult } from './mcp-tools.js';

/**
 * The nanoclaw MCP tools as plain definitions, served two ways from this one list: in-process
 * by the agent-runner (the SDK's createSdkMcpServer, no extra process on the start-up path) and
 * over stdio by mcp-server.ts.
 */
export interface NanoclawTool<S extends z.ZodRawShape> {
  name: string;
  description: string;
  inputSchema: S;
  run(args: z.infer<z.ZodObject<S>>): Promise<ToolResult>;
}

/** Receives each tool in turn; generic so every tool keeps its own argument types. */
export type ToolSink = <S extends z.ZodRawShape>(tool: NanoclawTool<S>) => void;

/**
 * The tools' implementations load at the first call (Node keeps the module after that), so
 * cron-parser and its timezone library stay off the cold start.
 */
const tools = () => import('./mcp-tools.js');

/** What an MCP tool call returns; a throw becomes an error result, never a crash. */
export async function toolReply(run: () => Promise<ToolResult>) {
  let result: ToolResult;
  try {
    result = await run();
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

/** Hands every tool this group may use to `add`: main alone gets register_group and refresh_groups. */
export function defineNanoclawTools(ctx: ToolContext, add: ToolSink): void {
  add({
    name: 'send_message',
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
    run: async (args) => (await tools()).sendMessage(ctx, args),
  });

  add({
    name: 'schedule_task',
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
    run: async (args) => (await tools()).scheduleTask(ctx, args),
  });

  add({
    name: 'list_tasks',
    description: "List scheduled tasks (only this group's, unless this is the main group).",
    inputSchema: {},
    run: async () => (await tools()).listTasks(ctx),
  });

  for (const [name, verb] of [
    ['pause_task', 'Pause'],
    ['resume_task', 'Resume'],
    ['cancel_task', 'Cancel (delete)'],
  ] as const) {
    add({
      name,
      description: `${verb} a scheduled task.`,
      inputSchema: { task_id: taskId },
      run: async (args) => (await tools()).taskAction(ctx, name, args.task_id),
    });
  }

  add({
    name: 'update_task',
    description:
      'Change a scheduled task: its prompt, schedule (same formats as schedule_task) or context mode.',
    inputSchema: {
      task_id: taskId,
      prompt: z.string().min(1).optional(),
      schedule_type: scheduleType.optional(),
      schedule_value: z.string().min(1).optional(),
      context_mode: contextMode.optional(),
    },
    run: async (args) => (await tools()).updateTask(ctx, args),
  });

  if (!ctx.isMain) return;
  add({
    name: 'register_group',
    description:
      'Main group only: start answering in another chat. Chats the assistant can see are listed in /workspace/inbox/available_groups.json.',
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
    run: async (args) => (await tools()).registerGroup(ctx, args),
  });
  add({
    name: 'refresh_groups',
    description: 'Main group only: ask the host to refresh /workspace/inbox/available_groups.json.',
    inputSchema: {},
    run: async () => (await tools()).refreshGroups(ctx),
  });
}
