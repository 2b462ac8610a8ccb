import fs from 'node:fs';
import path from 'node:path';

/** One task as listed in current_tasks.json, which the host writes for the agent to read. */
export interface TaskSnapshot {
  id: string;
  groupFolder?: string;
  chatJid?: string;
  prompt?: string;
  scheduleType?: string;
  scheduleValue?: string;
  contextMode?: string;
  status?: string;
  nextRun?: string | null;
  lastRun?: string | null;
  /** What the last run produced (or its error), as the host recorded it. */
  lastResult?: string | null;
}

type Raw = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Accepts the host's camelCase fields and snake_case spellings alike. */
function normalize(raw: Raw): TaskSnapshot | undefined {
  const id = str(raw.id) ?? str(raw.taskId) ?? str(raw.task_id);
  if (!id) return undefined;
  return {
    id,
    groupFolder: str(raw.groupFolder) ?? str(raw.group_folder),
    chatJid: str(raw.chatJid) ?? str(raw.chat_jid),
    prompt: str(raw.prompt),
    scheduleType: str(raw.scheduleType) ?? str(raw.schedule_type),
    scheduleValue: str(raw.scheduleValue) ?? str(raw.schedule_value),
    contextMode: str(raw.contextMode) ?? str(raw.context_mode),
    status: str(raw.status),
    nextRun: str(raw.nextRun) ?? str(raw.next_run) ?? null,
    lastRun: str(raw.lastRun) ?? str(raw.last_run) ?? null,
    lastResult: str(raw.lastResult) ?? str(raw.last_result) ?? null,
  };
}

/** The tasks the host last published; empty when the file is missing or unreadable. */
export function readTaskSnapshot(inboxDir: string): TaskSnapshot[] {
  return loadTaskSnapshot(inboxDir) ?? [];
}

/** Like readTaskSnapshot, but null when there is no readable list (so nothing can be told from it). */
export function loadTaskSnapshot(inboxDir: string): TaskSnapshot[] | null {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(path.join(inboxDir, 'current_tasks.json'), 'utf8'));
  } catch {
    return null;
  }
  const list = Array.isArray(json)
    ? json
    : Array.isArray((json as Raw)?.tasks)
      ? (json as { tasks: unknown[] }).tasks
      : null;
  if (list === null) return null;
  return list
    .filter((item): item is Raw => typeof item === 'object' && item !== null)
    .map(normalize)
    .filter((t): t is TaskSnapshot => t !== undefined);
}

/** A task belongs to a group when its folder or its chat matches. */
export function belongsTo(task: TaskSnapshot, groupFolder: string, chatJid: string): boolean {
  return task.groupFolder === groupFolder || (task.groupFolder === undefined && task.chatJid === chatJid);
}
