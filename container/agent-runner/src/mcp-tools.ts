import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ipcResponseSchema,
  RESPONSES_DIR,
  TASKS_SNAPSHOT,
  type IpcTask,
  type TaskSnapshot,
} from './contract/ipc.js';

// Each tool writes one IPC file with a requestId; the host decides and answers in the inbox. Its rules
// live on the host only, so the agent hears them in the host's words.
export interface ToolContext {
  chatJid: string;
  groupFolder: string;
  isMain: boolean;
  ipcDir: string;
  inboxDir: string;
  /** Else NANOCLAW_GROUP_DIR, else /workspace/group. */
  groupDir?: string;
}

export interface ToolResult {
  text: string;
  isError?: boolean;
}

type Args<T extends IpcTask['type']> = Omit<Extract<IpcTask, { type: T }>, 'type' | 'taskId'>;

const random = (bytes: number) => crypto.randomBytes(bytes).toString('hex');

/** The inbox is read-only: an answer is read once, never deleted; its id is never asked again. */
async function awaitResponse(ctx: ToolContext, requestId: string) {
  const file = path.join(ctx.inboxDir, RESPONSES_DIR, `${requestId}.json`);
  const deadline = Date.now() + (Number(process.env.NANOCLAW_RESPONSE_WAIT_MS) || 5000);
  do {
    try {
      return ipcResponseSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } while (Date.now() < deadline);
}

/** Renamed into place (the host reads only `*.json`); `done` is the text when the host adds none. */
async function submit(
  ctx: ToolContext,
  kind: 'messages' | 'tasks',
  data: { type: string; taskId?: string; [field: string]: unknown },
  done: string,
): Promise<ToolResult> {
  const dir = path.join(ctx.ipcDir, kind);
  fs.mkdirSync(dir, { recursive: true });
  const requestId = random(8);
  const file = path.join(dir, `${Date.now()}-${requestId}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ ...data, requestId }));
  fs.renameSync(`${file}.tmp`, file);
  const response = await awaitResponse(ctx, requestId);
  if (!response)
    return {
      text: `Submitted (${[data.type, data.taskId].filter(Boolean).join(' ')}), but the host has not confirmed it yet.`,
    };
  return response.ok
    ? { text: response.result ?? done }
    : { text: `The host refused: ${response.error}`, isError: true };
}

export const sendMessage = (ctx: ToolContext, args: { text: string; sender?: string }) =>
  submit(ctx, 'messages', { type: 'message', chatJid: ctx.chatJid, ...args }, 'Message sent.');

// The host copies the file out without following links; this only makes the path relative.
export function sendFile(ctx: ToolContext, args: { path: string; caption?: string }) {
  const groupDir = ctx.groupDir ?? process.env.NANOCLAW_GROUP_DIR ?? '/workspace/group';
  const relative = path.relative(groupDir, path.resolve(groupDir, args.path));
  if (!relative || relative.startsWith('..') || path.isAbsolute(relative))
    return { text: `Only files inside ${groupDir} can be sent; copy it there first.`, isError: true };
  const request = { type: 'file', chatJid: ctx.chatJid, path: relative, caption: args.caption };
  return submit(ctx, 'messages', request, 'File sent.');
}

export function scheduleTask(ctx: ToolContext, args: Args<'schedule_task'>) {
  const taskId = `task-${Date.now()}-${random(3)}`;
  // Explicit: a file without a mode means `isolated`.
  const request = { ...args, type: 'schedule_task', taskId, context_mode: args.context_mode ?? 'group' };
  return submit(ctx, 'tasks', request, `Task ${taskId} scheduled.`);
}

export function listTasks(ctx: ToolContext): ToolResult {
  let tasks: TaskSnapshot = [];
  try {
    tasks = JSON.parse(fs.readFileSync(path.join(ctx.inboxDir, TASKS_SNAPSHOT), 'utf8')) as TaskSnapshot;
  } catch {
    // No snapshot yet.
  }
  const lines = tasks
    .filter((t) => ctx.isMain || t.groupFolder === ctx.groupFolder)
    .map((t) => {
      const where = ctx.isMain ? ` [${t.groupFolder}]` : '';
      const times = `${t.nextRun ? `, next ${t.nextRun}` : ''}${t.lastRun ? `, last ${t.lastRun}` : ''}`;
      const flat = t.lastResult?.replace(/\s+/g, ' ').trim();
      const result = flat ? `\n  last result: ${flat.length > 200 ? `${flat.slice(0, 199)}…` : flat}` : '';
      return `- ${t.id}${where} (${t.status}; ${t.scheduleType}: ${t.scheduleValue}${times}): ${t.prompt}${result}`;
    });
  return {
    text: lines.length
      ? `Scheduled tasks (next/last times in UTC):\n${lines.join('\n')}`
      : 'No scheduled tasks.',
  };
}

export const taskAction = (
  ctx: ToolContext,
  action: 'pause_task' | 'resume_task' | 'cancel_task',
  taskId: string,
) => submit(ctx, 'tasks', { type: action, taskId }, `Done: ${action.replace('_task', '')} task ${taskId}.`);

export const updateTask = (
  ctx: ToolContext,
  { task_id: taskId, ...changes }: Args<'update_task'> & { task_id: string },
) => submit(ctx, 'tasks', { type: 'update_task', taskId, ...changes }, `Task ${taskId} updated.`);

export const registerGroup = (ctx: ToolContext, args: Args<'register_group'>) =>
  submit(
    ctx,
    'tasks',
    { type: 'register_group', ...args },
    `Registered ${args.name} (${args.jid}) in folder ${args.folder}.`,
  );

export const refreshGroups = (ctx: ToolContext) =>
  submit(ctx, 'tasks', { type: 'refresh_groups' }, 'available_groups.json refreshed.');
