import crypto from 'node:crypto';
import path from 'node:path';
import { writeIpcFile } from './ipc-files.js';
import { minIntervalFromEnv, validateSchedule, type ScheduleType } from './schedule-validation.js';
import { belongsTo, loadTaskSnapshot, readTaskSnapshot, type TaskSnapshot } from './task-snapshot.js';

/**
 * The nanoclaw tools' behaviour, apart from the MCP plumbing. Each writes one IPC file for the
 * host, which checks authorisation again (the host trusts only the directory a file came from);
 * the checks here exist to give the agent a clear answer at once.
 */
export interface ToolContext {
  chatJid: string;
  groupFolder: string;
  isMain: boolean;
  /** Where requests go (messages/, tasks/). */
  ipcDir: string;
  /** Where the host's snapshots are (read-only). */
  inboxDir: string;
  /** Timezone for cron validation. */
  tz?: string;
  /** The host's minimum task interval; read from NANOCLAW_MIN_TASK_INTERVAL_MS when not given. */
  minIntervalMs?: number;
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

function checkSchedule(ctx: ToolContext, type: ScheduleType, value: string) {
  return validateSchedule(type, value, {
    tz: ctx.tz,
    minIntervalMs: ctx.minIntervalMs ?? minIntervalFromEnv(),
  });
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

/** Ids scheduled through this context, which the host's list may not show yet. */
const scheduledHere = new WeakMap<ToolContext, Set<string>>();

export function scheduleTask(ctx: ToolContext, args: ScheduleTaskArgs): ToolResult {
  if (!ctx.isMain && args.target_group_jid && args.target_group_jid !== ctx.chatJid)
    return fail('Only the main group can schedule tasks for another chat; leave target_group_jid empty.');
  const check = checkSchedule(ctx, args.schedule_type, args.schedule_value);
  if (!check.ok) return fail(check.error);
  const taskId = newTaskId();
  // Always explicit: the tool promises `group` by default, while the host's own default for a
  // file without a mode is `isolated`.
  const contextMode = args.context_mode ?? 'group';
  writeTask(ctx, {
    type: 'schedule_task',
    taskId,
    prompt: args.prompt,
    schedule_type: args.schedule_type,
    schedule_value: args.schedule_value.trim(),
    context_mode: contextMode,
    ...(args.target_group_jid ? { target_group_jid: args.target_group_jid } : {}),
  });
  scheduledHere.set(ctx, (scheduledHere.get(ctx) ?? new Set()).add(taskId));
  return ok(
    `Task ${taskId} scheduled (${args.schedule_type}: ${args.schedule_value.trim()}, context ${contextMode}).`,
  );
}

function visibleTasks(ctx: ToolContext): TaskSnapshot[] {
  const tasks = readTaskSnapshot(ctx.inboxDir);
  return ctx.isMain ? tasks : tasks.filter((t) => belongsTo(t, ctx.groupFolder, ctx.chatJid));
}

export function listTasks(ctx: ToolContext): ToolResult {
  const tasks = visibleTasks(ctx);
  if (tasks.length === 0) return ok('No scheduled tasks.');
  const lines = tasks.map((t) => {
    const where = ctx.isMain && t.groupFolder ? ` [${t.groupFolder}]` : '';
    const next = t.nextRun ? `, next ${t.nextRun}` : '';
    const last = t.lastRun ? `, last ${t.lastRun}` : '';
    const result = t.lastResult ? `\n  last result: ${oneLine(t.lastResult, 200)}` : '';
    return `- ${t.id}${where} (${t.status ?? 'unknown'}; ${t.scheduleType ?? '?'}: ${t.scheduleValue ?? '?'}${next}${last}): ${t.prompt ?? ''}${result}`;
  });
  // Stored instants are UTC; schedules the agent writes are local, so say which is which.
  return ok(`Scheduled tasks (next/last times in UTC):\n${lines.join('\n')}`);
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

type TaskAction = 'pause_task' | 'resume_task' | 'cancel_task' | 'update_task';

/**
 * Refuses what the host would refuse, going by the task list the host published: a task of
 * another group, an id it doesn't know, a change to a completed task. A refusal by the host only
 * reaches its log, so this is where the agent learns of it. Without a readable list, or for a task
 * just scheduled here (the list may not show it yet), the host alone decides.
 */
function checkTask(ctx: ToolContext, taskId: string, action: TaskAction): ToolResult | undefined {
  const tasks = loadTaskSnapshot(ctx.inboxDir);
  if (tasks === null || scheduledHere.get(ctx)?.has(taskId)) return undefined;
  const task = tasks.find((t) => t.id === taskId);
  if (task && !ctx.isMain && !belongsTo(task, ctx.groupFolder, ctx.chatJid))
    return fail(`Task ${taskId} belongs to another group; you can only manage this group's tasks.`);
  if (!task)
    return fail(
      `Task ${taskId} not found${ctx.isMain ? '' : " among this group's tasks"}; list_tasks shows the ids.`,
    );
  if (task.status === 'completed' && action !== 'cancel_task')
    return fail(`Task ${taskId} has completed; schedule a new task instead.`);
  if (action === 'resume_task' && task.scheduleType === 'once' && task.lastRun)
    return fail(`Task ${taskId} is a once task that already ran; schedule a new task instead.`);
  return undefined;
}

export function taskAction(
  ctx: ToolContext,
  action: 'pause_task' | 'resume_task' | 'cancel_task',
  taskId: string,
): ToolResult {
  const refused = checkTask(ctx, taskId, action);
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
  const refused = checkTask(ctx, args.task_id, 'update_task');
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
    const known = readTaskSnapshot(ctx.inboxDir).find((t) => t.id === args.task_id)?.scheduleType;
    const type = args.schedule_type ?? known;
    if (type === 'cron' || type === 'interval' || type === 'once') {
      const check = checkSchedule(ctx, type, args.schedule_value);
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
