import { z } from 'zod/v3';

/**
 * The files host and agent-runner exchange; the runner's build copies src/contract/ (import only
 * zod and cron-parser). zod's v3 API loads much faster than zod 4's on the runner's cold start.
 */

/** Folder names become host paths and sandbox names; `global` and `errors` are the host's own. */
export function isValidFolder(folder: string): boolean {
  return (
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(folder) && !['global', 'errors'].includes(folder.toLowerCase())
  );
}
export const FOLDER_RULE =
  "use up to 64 letters, digits, _ or -, starting with a letter or digit, not 'global' or 'errors'";
export const folderProblem = (folder: string) =>
  isValidFolder(folder) ? undefined : `folder '${folder}' is not allowed: ${FOLDER_RULE}`;

export const MAX_IPC_FILE_BYTES = 1024 * 1024;
/** The lines around each result the agent-runner writes to stdout. */
export const OUTPUT_START = '---NANOCLAW_OUTPUT_START---';
export const OUTPUT_END = '---NANOCLAW_OUTPUT_END---';
export const CLOSE_SENTINEL = '_close';
export const TASKS_SNAPSHOT = 'current_tasks.json';
export const GROUPS_SNAPSHOT = 'available_groups.json';

export const scheduleTypeSchema = z.enum(['cron', 'interval', 'once']);
export type ScheduleType = z.infer<typeof scheduleTypeSchema>;
export const contextModeSchema = z.enum(['group', 'isolated']);
export const taskIdSchema = z.string().min(1).max(128);
const text = z.string().min(1);

/** Agent to host: messages/*.json and tasks/*.json. */
export const ipcMessageSchema = z.object({
  type: z.literal('message'),
  chatJid: text,
  text,
  sender: text.max(64).optional(),
});

export const ipcTaskSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('schedule_task'),
    taskId: taskIdSchema.optional(),
    prompt: text,
    schedule_type: scheduleTypeSchema,
    schedule_value: text,
    context_mode: contextModeSchema.optional(),
    target_group_jid: text.optional(),
  }),
  z.object({ type: z.literal('pause_task'), taskId: taskIdSchema }),
  z.object({ type: z.literal('resume_task'), taskId: taskIdSchema }),
  z.object({ type: z.literal('cancel_task'), taskId: taskIdSchema }),
  z.object({
    type: z.literal('update_task'),
    taskId: taskIdSchema,
    prompt: text.optional(),
    schedule_type: scheduleTypeSchema.optional(),
    schedule_value: text.optional(),
    context_mode: contextModeSchema.optional(),
  }),
  z.object({
    type: z.literal('register_group'),
    jid: text,
    name: text,
    folder: text,
    trigger: text,
    requires_trigger: z.boolean().optional(),
  }),
  z.object({ type: z.literal('refresh_groups') }),
]);
export type IpcTask = z.infer<typeof ipcTaskSchema>;

/** Host to agent: input/*.json (follow-ups; `_close` ends the run), then the two snapshots. */
export const inputFileSchema = z.object({ type: z.literal('message'), text: z.string() });

export const taskSnapshotSchema = z.array(
  z.object({
    id: z.string(),
    groupFolder: z.string(),
    chatJid: z.string(),
    prompt: z.string(),
    schedule_type: scheduleTypeSchema,
    schedule_value: z.string(),
    context_mode: contextModeSchema,
    status: z.enum(['active', 'paused', 'completed']),
    next_run: z.string().nullable(),
    last_run: z.string().nullable(),
    last_result: z.string().nullable(),
  }),
);
export type TaskSnapshot = z.infer<typeof taskSnapshotSchema>;

/** Main's agent only. */
export interface AvailableGroups {
  groups: Array<{
    jid: string;
    name: string;
    channel: string;
    isGroup: boolean;
    lastActivity: string;
    isRegistered: boolean;
  }>;
  lastSync: string;
}
