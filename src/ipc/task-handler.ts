import crypto from 'node:crypto';
import type { Config } from '../config.js';
import { ipcTaskSchema, type IpcResponse, type IpcTask, zodProblems } from '../contract/ipc.js';
import { validateSchedule } from '../contract/schedule.js';
import type { Store } from '../db/store.js';
import type { GroupRegistration } from '../groups.js';
import { cancelTask, pauseTask, resumeTask } from '../scheduler/task-actions.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';

export interface TaskIpcDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'minTaskIntervalMs'>;
  maxActiveTasksPerGroup: number;
  /** Reschedules and rewrites the folder's task snapshot. */
  onTasksChanged(groupFolder: string): void;
  registerGroup(group: GroupRegistration): { ok: true } | { ok: false; error: string };
  refreshGroups(): Promise<void>;
}

/** A string is a refusal. */
type Outcome = string | { done: string; changed?: string };
type Handler<T extends IpcTask['type']> = (
  request: Extract<IpcTask, { type: T }>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
) => Outcome;

const VERBS = {
  pause_task: 'paused',
  resume_task: 'resumed',
  cancel_task: 'cancelled',
  update_task: 'updated',
};

// Non-main groups act only on their own chat and tasks; main on any, and alone registers groups.
export async function handleTaskIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Promise<IpcResponse> {
  const parsed = ipcTaskSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, error: `invalid task file: ${zodProblems(parsed.error)}` };
  const request = parsed.data;
  try {
    const outcome =
      request.type === 'schedule_task'
        ? scheduleTask(request, source, deps)
        : request.type === 'register_group'
          ? registerGroup(request, source, deps)
          : request.type !== 'refresh_groups'
            ? manageTask(request, source, deps)
            : !source.isMain
              ? 'only the main group may refresh the group list'
              : (await deps.refreshGroups(), { done: 'available_groups.json refreshed' });
    if (typeof outcome === 'string') return { ok: false, error: `group '${source.folder}': ${outcome}` };
    if (outcome.changed) deps.onTasksChanged(outcome.changed);
    return { ok: true, result: outcome.done };
  } catch (err) {
    return { ok: false, error: `${request.type} failed: ${(err as Error).message}` };
  }
}

const check = (type: ScheduledTask['scheduleType'], value: string, { config }: TaskIpcDeps) =>
  validateSchedule(type, value, config.timezone, { minIntervalMs: config.minTaskIntervalMs });

function overLimit(folder: string, { store, maxActiveTasksPerGroup: max }: TaskIpcDeps) {
  const active = store.tasks.countActive(folder);
  return (
    active >= max &&
    `group '${folder}' already has ${active} active tasks (limit ${max}); cancel or pause one`
  );
}

const scheduleTask: Handler<'schedule_task'> = (request, source, deps) => {
  const jid = request.target_group_jid ?? source.jid;
  if (!source.isMain && jid !== source.jid)
    return `may schedule tasks only for its own chat, not for '${jid}'`;
  const target = deps.store.groups.byJid(jid);
  if (!target) return `target_group_jid '${jid}' is not a registered group`;
  const schedule = check(request.schedule_type, request.schedule_value, deps);
  if (!schedule.ok) return schedule.error;
  const full = overLimit(target.folder, deps);
  if (full) return full;
  const id = request.taskId ?? `task-${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
  deps.store.tasks.create({
    id,
    groupFolder: target.folder,
    chatJid: target.jid,
    prompt: request.prompt,
    scheduleType: request.schedule_type,
    scheduleValue: request.schedule_value.trim(),
    contextMode: request.context_mode ?? 'isolated',
    nextRun: schedule.nextRun,
  });
  return { done: `scheduled task ${id}, next run ${schedule.nextRun} (UTC)`, changed: target.folder };
};

const manageTask: Handler<keyof typeof VERBS> = (request, source, deps) => {
  const { store, config } = deps;
  const task = store.tasks.byId(request.taskId);
  if (!task) return `task '${request.taskId}' not found`;
  const { id, groupFolder: folder, status } = task;
  if (!source.isMain && folder !== source.folder)
    return `may manage only its own tasks; task '${id}' belongs to another group`;
  if (status === 'completed' && request.type !== 'cancel_task') return `task '${id}' is completed`;
  if (request.type === 'update_task') {
    const { prompt, schedule_type, schedule_value, context_mode: contextMode } = request;
    const scheduleType = schedule_type ?? task.scheduleType;
    const scheduleValue = schedule_value?.trim() ?? task.scheduleValue;
    const schedule = schedule_type || schedule_value ? check(scheduleType, scheduleValue, deps) : undefined;
    if (schedule?.ok === false) return schedule.error;
    store.tasks.update(id, {
      prompt,
      contextMode,
      ...(schedule && { scheduleType, scheduleValue, nextRun: schedule.nextRun }),
    });
  } else {
    const full = request.type === 'resume_task' && status === 'paused' && overLimit(folder, deps);
    if (full) return full;
    const result =
      request.type === 'pause_task'
        ? pauseTask(store, id)
        : request.type === 'cancel_task'
          ? cancelTask(store, id)
          : resumeTask(store, id, config.timezone, new Date());
    if (!result.ok) return result.error;
  }
  return { done: `task ${id} ${VERBS[request.type]}`, changed: folder };
};

const registerGroup: Handler<'register_group'> = ({ jid, folder, name, ...request }, source, deps) => {
  if (!source.isMain) return 'only the main group may register groups';
  const existing = deps.store.groups.byJid(jid);
  if (existing && existing.folder !== folder)
    return `chat '${jid}' is already registered with folder '${existing.folder}'`;
  // Only the person makes a group main.
  const result = deps.registerGroup({
    jid,
    name,
    folder,
    trigger: request.trigger,
    requiresTrigger: request.requires_trigger,
    isMain: existing?.isMain,
  });
  return result.ok ? { done: `registered ${name} (${jid}) in folder ${folder}` } : result.error;
};
