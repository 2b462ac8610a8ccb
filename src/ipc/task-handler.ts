import crypto from 'node:crypto';
import type { Config } from '../config.js';
import { folderProblem, ipcTaskSchema, type IpcResponse, type IpcTask } from '../contract/ipc.js';
import { validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import { folderTaken } from '../groups.js';
import { logger } from '../logger.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
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

type Request<T extends IpcTask['type']> = Extract<IpcTask, { type: T }>;
/** A string is a refusal. */
type Outcome = string | { done: string; changed?: string };

const VERBS = {
  pause_task: 'paused',
  resume_task: 'resumed',
  cancel_task: 'cancelled',
  update_task: 'updated',
};

// Non-main groups schedule only for their own chat and manage only their own tasks; main manages
// any group's and alone registers groups.
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
    logger.info({ type, group: source.folder, result: outcome.done }, 'task request done');
    if (outcome.changed) {
      deps.scheduler.reschedule();
      deps.onTasksChanged(outcome.changed);
    }
    return { ok: true, result: outcome.done };
  } catch (err) {
    logger.error({ err, type, group: source.folder }, 'task IPC handler failed');
    return { ok: false, error: `${type} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function handle(request: IpcTask, source: RegisteredGroup, deps: TaskIpcDeps): Promise<Outcome> {
  switch (request.type) {
    case 'schedule_task':
      return scheduleTask(request, source, deps);
    case 'register_group':
      return registerGroup(request, source, deps);
    case 'refresh_groups':
      if (!source.isMain) return 'only the main group may refresh the group list';
      await deps.refreshGroups();
      return { done: 'available_groups.json refreshed' };
    case 'pause_task':
    case 'resume_task':
    case 'cancel_task':
    case 'update_task':
      return manageTask(request, source, deps);
  }
}

const check = (type: ScheduledTask['scheduleType'], value: string, { config }: TaskIpcDeps) =>
  validateSchedule(type, value, config.timezone, { minIntervalMs: config.minTaskIntervalMs });

function overLimit(folder: string, { store, maxActiveTasksPerGroup: max }: TaskIpcDeps): string | undefined {
  const active = store.tasks.countActive(folder);
  if (active >= max) return `group '${folder}' already has ${active} active tasks (limit ${max})`;
}

function scheduleTask(
  request: Request<'schedule_task'>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Outcome {
  const jid = request.target_group_jid ?? source.jid;
  if (!source.isMain && jid !== source.jid)
    return `may schedule tasks only for its own chat, not for '${jid}'`;
  const target = jid === source.jid ? source : deps.store.groups.byJid(jid);
  if (!target) return `target_group_jid '${jid}' is not a registered group`;
  const schedule = check(request.schedule_type, request.schedule_value, deps);
  if (!schedule.ok) return schedule.error;
  const full = overLimit(target.folder, deps);
  if (full) return `${full}; cancel or pause one first`;
  const now = new Date();
  const id = request.taskId ?? `task-${now.getTime()}-${crypto.randomBytes(4).toString('hex')}`;
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
    createdAt: now.toISOString(),
  });
  const forOther = target === source ? '' : ` for ${target.folder}`;
  return {
    done: `scheduled task ${id}${forOther}, next run ${schedule.nextRun} (UTC)`,
    changed: target.folder,
  };
}

const ACTIONS = {
  pause_task: pauseTask,
  resume_task: (store: Store, id: string, timezone: string) => resumeTask(store, id, timezone, new Date()),
  cancel_task: cancelTask,
};

function manageTask(
  request: Request<keyof typeof VERBS>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Outcome {
  const { store } = deps;
  const task = store.tasks.byId(request.taskId);
  if (!task) return `task '${request.taskId}' not found`;
  if (!source.isMain && task.groupFolder !== source.folder)
    return `may manage only its own tasks; task '${task.id}' belongs to another group`;
  // Resuming counts against the active-task limit like scheduling does.
  if (request.type === 'resume_task' && task.status === 'paused') {
    const full = overLimit(task.groupFolder, deps);
    if (full) return full;
  }
  if (request.type === 'update_task') {
    const refused = updateTask(task, request, deps);
    if (refused) return refused;
  } else {
    const result = ACTIONS[request.type](store, task.id, deps.config.timezone);
    if (!result.ok) return result.error;
  }
  const after = store.tasks.byId(task.id);
  const next = after?.status === 'active' && after.nextRun ? `, next run ${after.nextRun} (UTC)` : '';
  return { done: `task ${task.id} ${VERBS[request.type]}${next}`, changed: task.groupFolder };
}

function updateTask(
  task: ScheduledTask,
  request: Request<'update_task'>,
  deps: TaskIpcDeps,
): string | undefined {
  const { prompt, schedule_type, schedule_value, context_mode } = request;
  if (task.status === 'completed') return `task '${task.id}' is completed; schedule a new task instead`;
  if (!prompt && !schedule_type && !schedule_value && !context_mode)
    return `update_task for '${task.id}' changes nothing`;
  const scheduleType = schedule_type ?? task.scheduleType;
  const scheduleValue = schedule_value?.trim() ?? task.scheduleValue;
  const schedule = schedule_type || schedule_value ? check(scheduleType, scheduleValue, deps) : undefined;
  if (schedule?.ok === false) return schedule.error;
  const changes = schedule && { scheduleType, scheduleValue, nextRun: schedule.nextRun };
  deps.store.tasks.update(task.id, { prompt, contextMode: context_mode, ...changes });
}

function registerGroup(
  request: Request<'register_group'>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Outcome {
  const { jid, folder, name, trigger, requires_trigger } = request;
  if (!source.isMain) return 'only the main group may register groups';
  const existing = deps.store.groups.byJid(jid);
  const refused =
    folderProblem(folder) ??
    (existing && existing.folder !== folder
      ? `chat '${jid}' is already registered with folder '${existing.folder}'`
      : folderTaken(deps.store, jid, folder));
  if (refused) return refused;
  // Re-registering keeps what only the person may set (main, mounts) and the original date.
  const result = deps.registerGroup({
    jid,
    name,
    folder,
    trigger,
    requiresTrigger: requires_trigger ?? true,
    isMain: existing?.isMain ?? false,
    addedAt: existing?.addedAt ?? new Date().toISOString(),
    ...(existing?.containerConfig && { containerConfig: existing.containerConfig }),
  });
  return result && !result.ok ? result.error : { done: `registered ${name} (${jid}) in folder ${folder}` };
}
