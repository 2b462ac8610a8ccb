import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  folderProblem,
  ipcResponseSchema,
  MAX_FILE_BYTES,
  RESPONSES_DIR,
  taskSnapshotSchema,
  TASKS_SNAPSHOT,
  type IpcTask,
  type ScheduleType,
} from './contract/ipc.js';
import { validateSchedule } from './contract/schedule.js';

// Each tool checks, writes one IPC file with a requestId, and waits for the host's answer in the inbox.
export interface ToolContext {
  chatJid: string;
  groupFolder: string;
  isMain: boolean;
  ipcDir: string;
  inboxDir: string;
  /** Else NANOCLAW_GROUP_DIR, else /workspace/group. */
  groupDir?: string;
  tz?: string;
  minIntervalMs?: number;
}

export interface ToolResult {
  text: string;
  isError?: boolean;
}

type Args<T extends IpcTask['type']> = Omit<Extract<IpcTask, { type: T }>, 'type' | 'taskId'>;

const ok = (text: string): ToolResult => ({ text });
const fail = (text: string): ToolResult => ({ text, isError: true });
const random = (bytes: number) => crypto.randomBytes(bytes).toString('hex');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The inbox is read-only: an answer is read once, never deleted; its id is never asked again. */
async function awaitResponse(ctx: ToolContext, requestId: string) {
  const file = path.join(ctx.inboxDir, RESPONSES_DIR, `${requestId}.json`);
  const deadline = Date.now() + (Number(process.env.NANOCLAW_RESPONSE_WAIT_MS) || 5000);
  do {
    try {
      return ipcResponseSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch {
      await sleep(50);
    }
  } while (Date.now() < deadline);
}

/** Renamed into place (the host reads only `*.json`); `done` is the text when the host adds none. */
async function submit(
  ctx: ToolContext,
  kind: 'messages' | 'tasks',
  data: { type: string; taskId?: string },
  done: string,
): Promise<ToolResult> {
  const dir = path.join(ctx.ipcDir, kind);
  fs.mkdirSync(dir, { recursive: true });
  const requestId = random(8);
  const file = path.join(dir, `${Date.now()}-${requestId}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ ...data, requestId }));
  fs.renameSync(`${file}.tmp`, file);
  const response = await awaitResponse(ctx, requestId);
  const what = [data.type, data.taskId].filter(Boolean).join(' ');
  if (!response) return ok(`Submitted (${what}), but the host has not confirmed it yet.`);
  return response.ok ? ok(response.result ?? done) : fail(`The host refused: ${response.error}`);
}

function checkSchedule(ctx: ToolContext, type: ScheduleType, value: string): ToolResult | undefined {
  const timezone = ctx.tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const check = validateSchedule(type, value, timezone, { minIntervalMs: ctx.minIntervalMs });
  return check.ok ? undefined : fail(check.error);
}

/** null when unreadable. */
function readTasks(ctx: ToolContext) {
  try {
    const json = fs.readFileSync(path.join(ctx.inboxDir, TASKS_SNAPSHOT), 'utf8');
    return taskSnapshotSchema
      .parse(JSON.parse(json))
      .filter((t) => ctx.isMain || t.groupFolder === ctx.groupFolder);
  } catch {
    return null;
  }
}

export function sendMessage(ctx: ToolContext, args: { text: string; sender?: string }) {
  const message = { type: 'message', chatJid: ctx.chatJid, text: args.text, sender: args.sender };
  return submit(ctx, 'messages', message, 'Message sent.');
}

export function sendFile(ctx: ToolContext, args: { path: string; caption?: string }) {
  const groupDir = ctx.groupDir ?? process.env.NANOCLAW_GROUP_DIR ?? '/workspace/group';
  const relative = path.relative(groupDir, path.resolve(groupDir, args.path));
  if (!relative || relative.startsWith('..') || path.isAbsolute(relative))
    return fail(`Only files inside ${groupDir} can be sent; copy it there first.`);
  const stat = fs.lstatSync(path.join(groupDir, relative), { throwIfNoEntry: false });
  if (!stat) return fail(`No such file: ${args.path}`);
  if (!stat.isFile()) return fail(`${args.path} is not a regular file (links are not followed).`);
  if (stat.size > MAX_FILE_BYTES) return fail(`${args.path} is over the ${MAX_FILE_BYTES >> 20} MiB limit.`);
  const request = { type: 'file', chatJid: ctx.chatJid, path: relative, caption: args.caption };
  return submit(ctx, 'messages', request, 'File sent.');
}

/** Ids scheduled through this context, which the host's list may not show yet. */
const scheduledHere = new WeakMap<ToolContext, Set<string>>();

export async function scheduleTask(ctx: ToolContext, args: Args<'schedule_task'>): Promise<ToolResult> {
  if (!ctx.isMain && args.target_group_jid && args.target_group_jid !== ctx.chatJid)
    return fail('Only the main group can schedule tasks for another chat; leave target_group_jid empty.');
  const refused = checkSchedule(ctx, args.schedule_type, args.schedule_value);
  if (refused) return refused;
  const taskId = `task-${Date.now()}-${random(3)}`;
  const schedule_value = args.schedule_value.trim();
  // Explicit: a file without a mode means `isolated`.
  const context_mode = args.context_mode ?? 'group';
  scheduledHere.set(ctx, (scheduledHere.get(ctx) ?? new Set()).add(taskId));
  const request = { ...args, type: 'schedule_task', taskId, schedule_value, context_mode };
  return submit(ctx, 'tasks', request, `Task ${taskId} scheduled.`);
}

export function listTasks(ctx: ToolContext): ToolResult {
  const lines = (readTasks(ctx) ?? []).map((t) => {
    const where = ctx.isMain ? ` [${t.groupFolder}]` : '';
    const times = `${t.next_run ? `, next ${t.next_run}` : ''}${t.last_run ? `, last ${t.last_run}` : ''}`;
    const flat = t.last_result?.replace(/\s+/g, ' ').trim();
    const result = flat ? `\n  last result: ${flat.length > 200 ? `${flat.slice(0, 199)}…` : flat}` : '';
    return `- ${t.id}${where} (${t.status}; ${t.schedule_type}: ${t.schedule_value}${times}): ${t.prompt}${result}`;
  });
  return ok(
    lines.length ? `Scheduled tasks (next/last times in UTC):\n${lines.join('\n')}` : 'No scheduled tasks.',
  );
}

/** What the host would refuse by its list; without one, or for a task just scheduled, it decides. */
function checkTask(ctx: ToolContext, taskId: string, action: string): ToolResult | undefined {
  const tasks = readTasks(ctx);
  if (tasks === null || scheduledHere.get(ctx)?.has(taskId)) return undefined;
  const task = tasks.find((t) => t.id === taskId);
  if (!task)
    return fail(
      `Task ${taskId} not found${ctx.isMain ? '' : " among this group's tasks"}; list_tasks shows the ids.`,
    );
  if (task.status === 'completed' && action !== 'cancel_task')
    return fail(`Task ${taskId} has completed; schedule a new task instead.`);
  if (action === 'resume_task' && task.schedule_type === 'once' && task.last_run)
    return fail(`Task ${taskId} is a once task that already ran; schedule a new task instead.`);
}

export async function taskAction(
  ctx: ToolContext,
  action: 'pause_task' | 'resume_task' | 'cancel_task',
  taskId: string,
): Promise<ToolResult> {
  const refused = checkTask(ctx, taskId, action);
  if (refused) return refused;
  return submit(
    ctx,
    'tasks',
    { type: action, taskId },
    `Done: ${action.replace('_task', '')} task ${taskId}.`,
  );
}

export async function updateTask(
  ctx: ToolContext,
  { task_id: taskId, ...changes }: Args<'update_task'> & { task_id: string },
): Promise<ToolResult> {
  const refused = checkTask(ctx, taskId, 'update_task');
  if (refused) return refused;
  if (Object.values(changes).every((v) => v === undefined))
    return fail('Nothing to update: give prompt, schedule_type, schedule_value or context_mode.');
  if (changes.schedule_value === undefined) {
    if (changes.schedule_type) return fail('Changing schedule_type needs a matching schedule_value.');
  } else {
    changes.schedule_value = changes.schedule_value.trim();
    const type = changes.schedule_type ?? readTasks(ctx)?.find((t) => t.id === taskId)?.schedule_type;
    const bad = type && checkSchedule(ctx, type, changes.schedule_value);
    if (bad) return bad;
  }
  return submit(ctx, 'tasks', { type: 'update_task', taskId, ...changes }, `Task ${taskId} updated.`);
}

export async function registerGroup(ctx: ToolContext, args: Args<'register_group'>): Promise<ToolResult> {
  if (!ctx.isMain) return fail('Only the main group can register groups.');
  const bad = folderProblem(args.folder);
  if (bad) return fail(bad);
  const request = { type: 'register_group', ...args };
  return submit(ctx, 'tasks', request, `Registered ${args.name} (${args.jid}) in folder ${args.folder}.`);
}

export async function refreshGroups(ctx: ToolContext): Promise<ToolResult> {
  if (!ctx.isMain) return fail('Only the main group can refresh the group list.');
  return submit(ctx, 'tasks', { type: 'refresh_groups' }, 'available_groups.json refreshed.');
}
