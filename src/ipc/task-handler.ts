import crypto from 'node:crypto';
import type { Config } from '../config.js';
import { folderProblem, ipcTaskSchema, type IpcResponse, type IpcTask } from '../contract/ipc.js';
import { validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import { folderTaken } from '../groups.js';
import { logger } from '../logger.js';
import { cancelTask, pauseTask, resumeTask, type TaskActionResult } from '../scheduler/task-actions.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';

export type IpcResult = IpcResponse;

export interface TaskIpcDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'minTaskIntervalMs'>;
  scheduler: { reschedule(): void };
  maxActiveTasksPerGroup: number;
  onTasksChanged(groupFolder: string): void;
  registerGroup(group: RegisteredGroup): void | IpcResult;
  refreshGroups(): Promise<void>;
}

type TaskOf<T extends IpcTask['type']> = Extract<IpcTask, { type: T }>;
/** Why a request is refused, or what was done. */
type Refusal = string | undefined;
type Outcome = Refusal | { done: string };
const done = (text: string) => ({ done: text });

/**
 * One tasks/*.json; `source` is the group whose folder it was found in. Non-main groups may
 * schedule only for their own chat and manage only their own tasks; main may manage any group's
 * and alone may register groups and refresh the group list. Never throws.
 */
export async function handleTaskIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Promise<IpcResult> {
  const parsed = ipcTaskSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, error: `invalid task file: ${zodProblems(parsed.error)}` };
  const { type } = parsed.data;
  try {
    const outcome = await handle(parsed.data, source, deps);
    if (typeof outcome === 'string') return { ok: false, error: `group '${source.folder}': ${outcome}` };
    return outcome ? { ok: true, result: outcome.done } : { ok: true };
  } catch (err) {
    logger.error({ err, type, group: source.folder }, 'task IPC handler failed');
    return { ok: false, error: `${type} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function handle(request: IpcTask, source: RegisteredGroup, deps: TaskIpcDeps): Promise<Outcome> {
  const { store } = deps;
  switch (request.type) {
    case 'schedule_task':
      return scheduleTask(request, source, deps);
    case 'pause_task':
      return manageTask(request.taskId, source, deps, 'paused', () => pauseTask(store, request.taskId));
    case 'resume_task':
      return manageTask(request.taskId, source, deps, 'resumed', () =>
        resumeWithinLimit(request.taskId, deps),
      );
    case 'cancel_task':
      return manageTask(request.taskId, source, deps, 'cancelled', () => cancelTask(store, request.taskId));
    case 'update_task':
      return manageTask(request.taskId, source, deps, 'updated', () => updateTask(request, deps));
    case 'register_group':
      return registerGroup(request, source, deps);
    case 'refresh_groups':
      if (!source.isMain) return 'only the main group may refresh the group list';
      await deps.refreshGroups();
      return done('available_groups.json refreshed');
  }
}

const check = (type: ScheduledTask['scheduleType'], value: string, deps: TaskIpcDeps) =>
  validateSchedule(type, value, deps.config.timezone, {
    now: new Date(),
    minIntervalMs: deps.config.minTaskIntervalMs,
  });

function overLimit(folder: string, { store, maxActiveTasksPerGroup: max }: TaskIpcDeps): Refusal {
  const active = store.tasks.countActive(folder);
  if (active >= max) return `group '${folder}' already has ${active} active tasks (limit ${max})`;
}

function scheduleTask(request: TaskOf<'schedule_task'>, source: RegisteredGroup, deps: TaskIpcDeps): Outcome {
  const targetJid = request.target_group_jid ?? source.jid;
  if (!source.isMain && targetJid !== source.jid)
    return `may schedule tasks only for its own chat, not for '${targetJid}'`;
  const target = targetJid === source.jid ? source : deps.store.groups.byJid(targetJid);
  if (!target) return `target_group_jid '${targetJid}' is not a registered group`;
  const schedule = check(request.schedule_type, request.schedule_value, deps);
  if (!schedule.ok) return schedule.error;
  const full = overLimit(target.folder, deps);
  if (full) return `${full}; cancel or pause one first`;
  const at = new Date();
  const id = request.taskId ?? `task-${at.getTime()}-${crypto.randomBytes(4).toString('hex')}`;
  if (deps.store.tasks.byId(id)) return `task id '${id}' is already in use`;
  deps.store.tasks.create({
    id,
    groupFolder: target.folder,
    chatJid: target.jid,
    prompt: request.prompt,
    scheduleType: request.schedule_type,
    scheduleValue: request.schedule_value.trim(),
    contextMode: request.context_mode ?? 'isolated',
    nextRun: schedule.nextRun,
    lastRun: null,
    lastResult: null,
    status: 'active',
    createdAt: at.toISOString(),
  });
  logger.info({ taskId: id, group: target.folder, by: source.folder }, 'task scheduled');
  deps.scheduler.reschedule();
  deps.onTasksChanged(target.folder);
  return done(
    `scheduled task ${id}${target === source ? '' : ` for ${target.folder}`}, next run ${schedule.nextRun} (UTC)`,
  );
}

function manageTask(
  taskId: string,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
  verb: string,
  action: () => TaskActionResult,
): Outcome {
  const task = deps.store.tasks.byId(taskId);
  if (!task) return `task '${taskId}' not found`;
  if (!source.isMain && task.groupFolder !== source.folder)
    return `may manage only its own tasks; task '${taskId}' belongs to another group`;
  const result = action();
  if (!result.ok) return result.error;
  logger.info({ taskId, group: task.groupFolder, by: source.folder }, 'task changed');
  deps.scheduler.reschedule();
  deps.onTasksChanged(task.groupFolder);
  const { status, nextRun } = result.task;
  const next = verb !== 'cancelled' && status === 'active' && nextRun ? `, next run ${nextRun} (UTC)` : '';
  return done(`task ${taskId} ${verb}${next}`);
}

/** Resuming counts against the active-task limit like scheduling does. */
function resumeWithinLimit(taskId: string, deps: TaskIpcDeps): TaskActionResult {
  const task = deps.store.tasks.byId(taskId)!;
  const full = task.status === 'paused' && overLimit(task.groupFolder, deps);
  if (full) return { ok: false, error: full };
  return resumeTask(deps.store, taskId, deps.config.timezone, new Date());
}

function updateTask(request: TaskOf<'update_task'>, deps: TaskIpcDeps): TaskActionResult {
  const task = deps.store.tasks.byId(request.taskId)!;
  if (task.status === 'completed')
    return { ok: false, error: `task '${task.id}' is completed; schedule a new task instead` };
  const { prompt, schedule_type, schedule_value, context_mode } = request;
  if (!prompt && !schedule_type && !schedule_value && !context_mode)
    return { ok: false, error: `update_task for '${task.id}' changes nothing` };
  let schedule: Partial<ScheduledTask> = {};
  if (schedule_type || schedule_value) {
    const scheduleType = schedule_type ?? task.scheduleType;
    const scheduleValue = schedule_value?.trim() ?? task.scheduleValue;
    const result = check(scheduleType, scheduleValue, deps);
    if (!result.ok) return result;
    schedule = { scheduleType, scheduleValue, nextRun: result.nextRun };
  }
  deps.store.tasks.update(task.id, { prompt, contextMode: context_mode, ...schedule });
  return { ok: true, task: deps.store.tasks.byId(task.id)! };
}

function registerGroup(
  { jid, folder, name, trigger, requires_trigger }: TaskOf<'register_group'>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Outcome {
  if (!source.isMain) return 'only the main group may register groups';
  const existing = deps.store.groups.byJid(jid);
  const refusal =
    folderProblem(folder) ??
    (existing && existing.folder !== folder
      ? `chat '${jid}' is already registered with folder '${existing.folder}'`
      : folderTaken(deps.store, jid, folder));
  if (refusal) return refusal;
  // Re-registering keeps what only the person may set (main, mounts) and the original date.
  const result = deps.registerGroup({
    jid,
    name,
    folder,
    trigger,
    requiresTrigger: requires_trigger ?? true,
    isMain: existing?.isMain ?? false,
    addedAt: existing?.addedAt ?? new Date().toISOString(),
    ...(existing?.containerConfig ? { containerConfig: existing.containerConfig } : {}),
  });
  if (result && !result.ok) return result.error;
  logger.info({ jid, folder, by: source.folder }, 'group registered over IPC');
  return done(`registered ${name} (${jid}) in folder ${folder}`);
}
