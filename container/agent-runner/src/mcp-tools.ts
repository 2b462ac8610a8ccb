import crypto from 'node:crypto';
import path from 'node:path';
import { writeIpcFile } from './ipc-files.js';
import { validateSchedule, type ScheduleType } from './schedule-validation.js';
import { belongsTo, readTaskSnapshot, type TaskSnapshot } from './task-snapshot.js';

/**
 * The nanoclaw tools' behaviour, apart from the MCP plumbing. Each writes one IPC file for the
 * host, which checks authorisation again (the host trusts only the directory a file came from);
 * the checks here exist to give the agent a clear answer at once.
 */
export interface ToolContext {
  chatJid: string;
  groupFolder: string;
  isMain: boolean;
  ipcDir: string;
  /** Timezone for cron validation. */
  tz?: string;
}

export interface ToolResult {
  text: string;
  isError?: boolean;
}

const ok = (text: string): ToolResult => ({ text });
const fail = (text: string): ToolResult => ({ text, isError: true });

const FOLDER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** Names the host keeps for itself (groups/global, data/ipc/errors). */
const RESERVED_FOLDERS = new Set(['global', 'errors']);

export function isValidFolder(folder: string): boolean {
  return FOLDER_PATTERN.test(folder) && folder.length <= 64 && !RESERVED_FOLDERS.has(folder.toLowerCase());
}

function writeTask(ctx: ToolContext, data: object): void {
  writeIpcFile(path.join(ctx.ipcDir, 'tasks'), data);
}

export function sendMessage(ctx: ToolContext, args: { text: string; sender?: string }): ToolResult {
  writeIpcFile(path.join(ctx.ipcDir, 'messages'), {
    type: 'message',
    chatJid: ctx.chatJid,
    text: args.text,
    ...(args.sender ? { sender: args.sender } : {}),
  });
  return ok('Message sent.');
}

export function newTaskId(now = Date.now()): string {
  return `task-${now}-${crypto.randomBytes(3).toString('hex')}`;
}

export interface ScheduleTaskArgs {
  prompt: string;
  schedule_type: ScheduleType;
  schedule_value: string;
  context_mode?: 'group' | 'isolated';
  target_group_jid?: string;
}

export function scheduleTask(ctx: ToolContext, args: ScheduleTaskArgs): ToolResult {
  if (!ctx.isMain && args.target_group_jid && args.target_group_jid !== ctx.chatJid)
    return fail('Only the main group can schedule tasks for another chat; leave target_group_jid empty.');
  const check = validateSchedule(args.schedule_type, args.schedule_value, ctx.tz);
  if (!check.ok) return fail(check.error);
  const taskId = newTaskId();
  writeTask(ctx, {
    type: 'schedule_task',
    taskId,
    prompt: args.prompt,
    schedule_type: args.schedule_type,
    schedule_value: args.schedule_value.trim(),
    ...(args.context_mode ? { context_mode: args.context_mode } : {}),
    ...(args.target_group_jid ? { target_group_jid: args.target_group_jid } : {}),
  });
  return ok(`Task ${taskId} scheduled (${args.schedule_type}: ${args.schedule_value.trim()}).`);
}

function visibleTasks(ctx: ToolContext): TaskSnapshot[] {
  const tasks = readTaskSnapshot(ctx.ipcDir);
  return ctx.isMain ? tasks : tasks.filter((t) => belongsTo(t, ctx.groupFolder, ctx.chatJid));
}

export function listTasks(ctx: ToolContext): ToolResult {
  const tasks = visibleTasks(ctx);
  if (tasks.length === 0) return ok('No scheduled tasks.');
  const lines = tasks.map((t) => {
    const where = ctx.isMain && t.groupFolder ? ` [${t.groupFolder}]` : '';
    const next = t.nextRun ? `, next ${t.nextRun}` : '';
    return `- ${t.id}${where} (${t.status ?? 'unknown'}; ${t.scheduleType ?? '?'}: ${t.scheduleValue ?? '?'}${next}): ${t.prompt ?? ''}`;
  });
  return ok(`Scheduled tasks:\n${lines.join('\n')}`);
}

/** Refuses a task another group owns; unknown ids pass (the list may predate a new task). */
function checkOwnership(ctx: ToolContext, taskId: string): ToolResult | undefined {
  if (ctx.isMain) return undefined;
  const task = readTaskSnapshot(ctx.ipcDir).find((t) => t.id === taskId);
  if (task && !belongsTo(task, ctx.groupFolder, ctx.chatJid))
    return fail(`Task ${taskId} belongs to another group; you can only manage this group's tasks.`);
  return undefined;
}

export function taskAction(
  ctx: ToolContext,
  action: 'pause_task' | 'resume_task' | 'cancel_task',
  taskId: string,
): ToolResult {
  const refused = checkOwnership(ctx, taskId);
  if (refused) return refused;
  writeTask(ctx, { type: action, taskId });
  const verb = { pause_task: 'pause', resume_task: 'resume', cancel_task: 'cancel' }[action];
  return ok(`Requested: ${verb} task ${taskId}.`);
}

export interface UpdateTaskArgs {
  task_id: string;
  prompt?: string;
  schedule_type?: ScheduleType;
  schedule_value?: string;
  context_mode?: 'group' | 'isolated';
}

export function updateTask(ctx: ToolContext, args: UpdateTaskArgs): ToolResult {
  const refused = checkOwnership(ctx, args.task_id);
  if (refused) return refused;
  if (
    args.prompt === undefined &&
    args.schedule_type === undefined &&
    args.schedule_value === undefined &&
    args.context_mode === undefined
  )
    return fail('Nothing to update: give prompt, schedule_type, schedule_value or context_mode.');
  if (args.schedule_type !== undefined && args.schedule_value === undefined)
    return fail('Changing schedule_type needs a matching schedule_value.');
  if (args.schedule_value !== undefined) {
    const known = readTaskSnapshot(ctx.ipcDir).find((t) => t.id === args.task_id)?.scheduleType;
    const type = args.schedule_type ?? known;
    if (type === 'cron' || type === 'interval' || type === 'once') {
      const check = validateSchedule(type, args.schedule_value, ctx.tz);
      if (!check.ok) return fail(check.error);
    }
  }
  writeTask(ctx, {
    type: 'update_task',
    taskId: args.task_id,
    ...(args.prompt !== undefined ? { prompt: args.prompt } : {}),
    ...(args.schedule_type !== undefined ? { schedule_type: args.schedule_type } : {}),
    ...(args.schedule_value !== undefined ? { schedule_value: args.schedule_value.trim() } : {}),
    ...(args.context_mode !== undefined ? { context_mode: args.context_mode } : {}),
  });
  return ok(`Requested: update task ${args.task_id}.`);
}

export interface RegisterGroupArgs {
  jid: string;
  name: string;
  folder: string;
  trigger: string;
  requires_trigger?: boolean;
}

export function registerGroup(ctx: ToolContext, args: RegisterGroupArgs): ToolResult {
  if (!ctx.isMain) return fail('Only the main group can register groups.');
  if (!isValidFolder(args.folder))
    return fail(
      `folder "${args.folder}" is not allowed: use up to 64 letters, digits, "_" or "-", starting with a letter or digit, and not "global" or "errors".`,
    );
  writeTask(ctx, {
    type: 'register_group',
    jid: args.jid,
    name: args.name,
    folder: args.folder,
    trigger: args.trigger,
    ...(args.requires_trigger !== undefined ? { requires_trigger: args.requires_trigger } : {}),
  });
  return ok(`Requested: register ${args.name} (${args.jid}) in folder ${args.folder}.`);
}

export function refreshGroups(ctx: ToolContext): ToolResult {
  if (!ctx.isMain) return fail('Only the main group can refresh the group list.');
  writeTask(ctx, { type: 'refresh_groups' });
  return ok('Requested a refresh of available_groups.json; read it again in a few seconds.');
}
