import { createSdkMcpServer, tool } from '@anthropic-ai/claude-agent-sdk';
import { z } from 'zod/v3';
import { contextModeSchema, ipcMessageSchema, scheduleTypeSchema, taskIdSchema } from './contract/ipc.js';
import * as t from './mcp-tools.js';

async function reply(run: () => t.ToolResult | Promise<t.ToolResult>) {
  let result: t.ToolResult;
  try {
    result = await run();
  } catch (err) {
    result = { text: `Failed: ${(err as Error).message}`, isError: true };
  }
  return { content: [{ type: 'text' as const, text: result.text }], isError: result.isError };
}

// In-process: a stdio server costs 0.1–0.4 s, and alwaysLoad (else the tools wait behind ToolSearch) waits for it.
export function nanoclawSdkServer(ctx: t.ToolContext) {
  const text = z.string().min(1);
  const taskId = taskIdSchema.describe('The task id, e.g. task-1767000000000-ab12cd');
  const schedule = {
    prompt: text.describe('What the agent should do when the task runs'),
    schedule_type: scheduleTypeSchema,
    schedule_value: text,
    context_mode: contextModeSchema.optional(),
  };
  const tools = [
    tool(
      'send_message',
      'Send a message to this chat right away, while you keep working (progress updates, or the result of a scheduled task). Your final answer is delivered anyway; do not repeat it here.',
      {
        text: ipcMessageSchema.shape.text.describe('The message text'),
        sender: ipcMessageSchema.shape.sender.describe('Name to speak under, for a member of an agent team'),
      },
      (args) => reply(() => t.sendMessage(ctx, args)),
    ),
    tool(
      'send_file',
      'Send a file from your workspace to this chat: images show inline, other files as downloads (20 MiB at most).',
      {
        path: text.describe('The file, inside /workspace/group (absolute, or relative to it)'),
        caption: z.string().max(4000).optional().describe('Text to send with it'),
      },
      (args) => reply(() => t.sendFile(ctx, args)),
    ),
    tool(
      'schedule_task',
      [
        'Schedule a prompt to run automatically later or repeatedly; returns the task id.',
        'schedule_type cron: a cron expression in local time, e.g. "0 9 * * 1-5" (weekdays 09:00).',
        'interval: milliseconds between runs, e.g. "3600000".',
        'once: a local time WITHOUT "Z" or offset, e.g. "2026-11-23T15:30:00".',
        "context_mode group (default) continues this chat's conversation; isolated starts fresh, so the prompt must say everything.",
      ].join(' '),
      {
        ...schedule,
        target_group_jid: text
          .optional()
          .describe('Main group only: the chat to run the task for (default: this chat)'),
      },
      (args) => reply(() => t.scheduleTask(ctx, args)),
    ),
    tool('list_tasks', "List scheduled tasks (only this group's, unless this is the main group).", {}, () =>
      reply(() => t.listTasks(ctx)),
    ),
    ...(['pause_task', 'resume_task', 'cancel_task'] as const).map((name) =>
      tool(
        name,
        `${{ pause_task: 'Pause', resume_task: 'Resume', cancel_task: 'Cancel (delete)' }[name]} a scheduled task.`,
        { task_id: taskId },
        (args) => reply(() => t.taskAction(ctx, name, args.task_id)),
      ),
    ),
    tool(
      'update_task',
      'Change a scheduled task: its prompt, schedule (same formats as schedule_task) or context mode.',
      { task_id: taskId, ...z.object(schedule).partial().shape },
      (args) => reply(() => t.updateTask(ctx, args)),
    ),
    ...(ctx.isMain
      ? [
          tool(
            'register_group',
            'Main group only: start answering in another chat. Chats the assistant can see are listed in /workspace/inbox/available_groups.json.',
            {
              jid: text.describe('The chat id'),
              name: text.describe('Display name'),
              folder: text.describe('Folder name for the group: letters, digits, _ or -'),
              trigger: text.describe('Trigger word, e.g. @Andy'),
              requires_trigger: z
                .boolean()
                .optional()
                .describe('false: answer every message, not only those starting with the trigger'),
            },
            (args) => reply(() => t.registerGroup(ctx, args)),
          ),
          tool(
            'refresh_groups',
            'Main group only: ask the host to refresh /workspace/inbox/available_groups.json.',
            {},
            () => reply(() => t.refreshGroups(ctx)),
          ),
        ]
      : []),
  ];
  return createSdkMcpServer({ name: 'nanoclaw', version: '1.0.0', tools, alwaysLoad: true });
}
