import crypto from 'node:crypto';
import { isValidFolder, type Config } from '../config.js';
import type { Store } from '../db/store.js';
import { logger } from '../logger.js';
import { validateSchedule } from '../scheduler/schedule.js';
import { cancelTask, pauseTask, resumeTask, type TaskActionResult } from '../scheduler/task-actions.js';
import type { RegisteredGroup, ScheduledTask } from '../types.js';
import { ipcTaskSchema, type IpcTask } from './schemas.js';

export interface TaskIpcDeps {
  store: Store;
  config: Pick<Config, 'timezone' | 'minTaskIntervalMs'>;
  scheduler: { reschedule(): void };
  maxActiveTasksPerGroup: number;
  /** A group's tasks changed: the host rewrites current_tasks.json. */
  onTasksChanged(groupFolder: string): void;
  /** Persists a new or re-registered group and prepares its folders; may report a refusal. */
  registerGroup(group: RegisteredGroup): void | IpcResult;
  /** Refreshes the group list main sees (available_groups.json). */
  refreshGroups(): Promise<void>;
  now?: () => number;
}

export type IpcResult = { ok: true } | { ok: false; error: string };

type TaskOf<T extends IpcTask['type']> = Extract<IpcTask, { type: T }>;

/**
 * Handles one file from a sandbox's `tasks/` directory. `source` is the group whose IPC directory
 * the file was found in: that, never the file, says who is asking. Non-main groups may schedule
 * only for their own chat and manage only their own tasks; main may manage any registered group
 * and alone may register groups and refresh the group list. Never throws.
 */
export async function handleTaskIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): Promise<IpcResult> {
  const parsed = ipcTaskSchema.safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
    return { ok: false, error: `invalid task file: ${problems.join('; ')}` };
  }
  const request = parsed.data;
  try {
    switch (request.type) {
      case 'schedule_task':
        return scheduleTask(request, source, deps);
      case 'pause_task':
        return manageTask(request.taskId, source, deps, () => pauseTask(deps.store, request.taskId));
      case 'resume_task':
        return manageTask(request.taskId, source, deps, () => resumeWithinLimit(request.taskId, deps));
      case 'cancel_task':
        return manageTask(request.taskId, source, deps, () => cancelTask(deps.store, request.taskId));
      case 'update_task':
        return manageTask(request.taskId, source, deps, () => updateTask(request, deps));
      case 'register_group':
        return registerGroup(request, source, deps);
      case 'refresh_groups':
        if (!source.isMain) return refuse(source, 'only the main group may refresh the group list');
        await deps.refreshGroups();
        return { ok: true };
    }
  } catch (err) {
    logger.error({ err, type: request.type, group: source.folder }, 'task IPC handler failed');
    return {
      ok: false,
      error: `${request.type} failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

function now(deps: TaskIpcDeps): number {
  return deps.now?.() ?? Date.now();
}

function refuse(source: RegisteredGroup, reason: string): IpcResult {
  return { ok: false, error: `group '${source.folder}': ${reason}` };
}

function changed(deps: TaskIpcDeps, ...folders: string[]): void {
  deps.scheduler.reschedule();
  for (const folder of new Set(folders)) deps.onTasksChanged(folder);
}

function scheduleTask(
  request: TaskOf<'schedule_task'>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): IpcResult {
  const targetJid = request.target_group_jid ?? source.jid;
  if (!source.isMain && targetJid !== source.jid) {
    return refuse(source, `may schedule tasks only for its own chat, not for '${targetJid}'`);
  }
  const target = targetJid === source.jid ? source : deps.store.groups.byJid(targetJid);
  if (!target) return refuse(source, `target_group_jid '${targetJid}' is not a registered group`);

  const at = new Date(now(deps));
  const check = validateSchedule(request.schedule_type, request.schedule_value, deps.config.timezone, {
    now: at,
    minIntervalMs: deps.config.minTaskIntervalMs,
  });
  if (!check.ok) return refuse(source, check.error);

  const active = deps.store.tasks.countActive(target.folder);
  if (active >= deps.maxActiveTasksPerGroup) {
    return refuse(
      source,
      `group '${target.folder}' already has ${active} active tasks (limit ${deps.maxActiveTasksPerGroup}); cancel or pause one first`,
    );
  }
  const id = request.taskId ?? `task-${at.getTime()}-${crypto.randomBytes(4).toString('hex')}`;
  if (deps.store.tasks.byId(id)) return refuse(source, `task id '${id}' is already in use`);

  const task: ScheduledTask = {
    id,
    groupFolder: target.folder,
    chatJid: target.jid,
    prompt: request.prompt,
    scheduleType: request.schedule_type,
    scheduleValue: request.schedule_value.trim(),
    contextMode: request.context_mode ?? 'isolated',
    nextRun: check.nextRun,
    lastRun: null,
    lastResult: null,
    status: 'active',
    createdAt: at.toISOString(),
  };
  deps.store.tasks.create(task);
  logger.info({ taskId: id, group: target.folder, by: source.folder }, 'task scheduled');
  changed(deps, target.folder);
  return { ok: true };
}

/** Checks ownership, then runs the action and announces the change. */
function manageTask(
  taskId: string,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
  action: () => TaskActionResult,
): IpcResult {
  const task = deps.store.tasks.byId(taskId);
  if (!task) return refuse(source, `task '${taskId}' not found`);
  if (!source.isMain && task.groupFolder !== source.folder) {
    return refuse(source, `may manage only its own tasks; task '${taskId}' belongs to another group`);
  }
  const result = action();
  if (!result.ok) return refuse(source, result.error);
  logger.info({ taskId, group: task.groupFolder, by: source.folder }, 'task changed');
  changed(deps, task.groupFolder);
  return { ok: true };
}

/** Resuming counts against the active-task limit like scheduling does. */
function resumeWithinLimit(taskId: string, deps: TaskIpcDeps): TaskActionResult {
  const task = deps.store.tasks.byId(taskId)!;
  const active = deps.store.tasks.countActive(task.groupFolder);
  if (task.status === 'paused' && active >= deps.maxActiveTasksPerGroup) {
    return {
      ok: false,
      error: `group '${task.groupFolder}' already has ${active} active tasks (limit ${deps.maxActiveTasksPerGroup})`,
    };
  }
  return resumeTask(deps.store, taskId, deps.config.timezone, new Date(now(deps)));
}

function updateTask(request: TaskOf<'update_task'>, deps: TaskIpcDeps): TaskActionResult {
  const task = deps.store.tasks.byId(request.taskId)!;
  if (task.status === 'completed') {
    return { ok: false, error: `task '${task.id}' is completed; schedule a new task instead` };
  }
  const { prompt, schedule_type, schedule_value, context_mode } = request;
  if (!prompt && !schedule_type && !schedule_value && !context_mode) {
    return { ok: false, error: `update_task for '${task.id}' changes nothing` };
  }
  let nextRun: string | undefined;
  const scheduleType = schedule_type ?? task.scheduleType;
  const scheduleValue = schedule_value?.trim() ?? task.scheduleValue;
  if (schedule_type || schedule_value) {
    const check = validateSchedule(scheduleType, scheduleValue, deps.config.timezone, {
      now: new Date(now(deps)),
      minIntervalMs: deps.config.minTaskIntervalMs,
    });
    if (!check.ok) return { ok: false, error: check.error };
    nextRun = check.nextRun;
  }
  deps.store.tasks.update(task.id, {
    prompt,
    contextMode: context_mode,
    ...(nextRun !== undefined ? { scheduleType, scheduleValue, nextRun } : {}),
  });
  return { ok: true, task: deps.store.tasks.byId(task.id)! };
}

function registerGroup(
  request: TaskOf<'register_group'>,
  source: RegisteredGroup,
  deps: TaskIpcDeps,
): IpcResult {
  if (!source.isMain) return refuse(source, 'only the main group may register groups');
  const { jid, name, folder, trigger } = request;
  if (!isValidFolder(folder)) {
    return refuse(
      source,
      `folder '${folder}' is not allowed: use letters, digits, _ and - (starting with a letter or digit, at most 64), not 'global' or 'errors'`,
    );
  }
  const byJid = deps.store.groups.byJid(jid);
  if (byJid && byJid.folder !== folder) {
    return refuse(source, `chat '${jid}' is already registered with folder '${byJid.folder}'`);
  }
  const byFolder = deps.store.groups.byFolder(folder);
  if (byFolder && byFolder.jid !== jid) {
    return refuse(source, `folder '${folder}' is already used by chat '${byFolder.jid}'`);
  }
  // Re-registering keeps what only the person may set (main, mounts) and the original date.
  const group: RegisteredGroup = {
    jid,
    name,
    folder,
    trigger,
    requiresTrigger: request.requires_trigger ?? true,
    isMain: byJid?.isMain ?? false,
    addedAt: byJid?.addedAt ?? new Date(now(deps)).toISOString(),
    ...(byJid?.containerConfig ? { containerConfig: byJid.containerConfig } : {}),
  };
  const result = deps.registerGroup(group);
  if (result && !result.ok) return refuse(source, result.error);
  logger.info({ jid, folder, by: source.folder }, 'group registered over IPC');
  return { ok: true };
}
