import { z } from 'zod/v3';

// Copied into the agent-runner: import only zod (v3: faster cold start) and cron-parser.

/** Folder names become host paths and sandbox names; `global` and `errors` are the host's own. */
export const isValidFolder = (folder: string) =>
  /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(folder) && !['global', 'errors'].includes(folder.toLowerCase());
export const FOLDER_RULE =
  "use up to 64 letters, digits, _ or -, starting with a letter or digit, not 'global' or 'errors'";

export const MAX_IPC_FILE_BYTES = 1024 * 1024;
export const MAX_FILE_BYTES = 20 * 1024 * 1024;
export const OUTPUT_START = '---NANOCLAW_OUTPUT_START---';
export const OUTPUT_END = '---NANOCLAW_OUTPUT_END---';
export const CLOSE_SENTINEL = '_close';
export const TASKS_SNAPSHOT = 'current_tasks.json';
export const GROUPS_SNAPSHOT = 'available_groups.json';
export const RESPONSES_DIR = 'responses';

export const scheduleTypeSchema = z.enum(['cron', 'interval', 'once']);
export type ScheduleType = z.infer<typeof scheduleTypeSchema>;
export const contextModeSchema = z.enum(['group', 'isolated']);
export const taskIdSchema = z.string().min(1).max(128);
const text = z.string().min(1);

// Agent to host, messages/*.json: a message, or a file whose `path` is relative to the group folder.
export const ipcMessageSchema = z.object({
  type: z.literal('message'),
  chatJid: text,
  text,
  sender: text.max(64).optional(),
});
export const ipcFileSchema = z.object({
  type: z.literal('file'),
  chatJid: text,
  path: text.max(1024),
  caption: z.string().max(4000).optional(),
});
/** Safe as a file name and inside `[...]` markers. */
export const safeFileName = (name: string, fallback = 'file') =>
  name
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(-100)
    .replace(/^[.]+/, '') || fallback;

const schedule = {
  prompt: text,
  schedule_type: scheduleTypeSchema,
  schedule_value: text,
  context_mode: contextModeSchema.optional(),
};
const byId = <T extends string>(type: T) => z.object({ type: z.literal(type), taskId: taskIdSchema });
export const ipcTaskSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('schedule_task'),
    taskId: taskIdSchema.optional(),
    ...schedule,
    target_group_jid: text.optional(),
  }),
  byId('pause_task'),
  byId('resume_task'),
  byId('cancel_task'),
  byId('update_task').extend(z.object(schedule).partial().shape),
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

/** Becomes a file name. */
export const requestIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
export const ipcResponseSchema = z.union([
  z.object({ ok: z.literal(true), result: z.string().optional() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type IpcResponse = z.infer<typeof ipcResponseSchema>;

// Host to agent: input/*.json and the task snapshot.
export const inputFileSchema = z.object({ type: z.literal('message'), text: z.string() });

// Sandbox stdin: one JSON object, never secrets. An empty prompt is a warm start (the prompt comes
// through the inbox). Stdout: frames of agentOutputSchema between the markers.
export const agentInputSchema = z.object({
  prompt: z.string(),
  sessionId: text.optional(),
  groupFolder: text,
  chatJid: text,
  isMain: z.boolean(),
  isScheduledTask: z.boolean().optional(),
  assistantName: text,
});
export type AgentInput = z.infer<typeof agentInputSchema>;
export const agentOutputSchema = z.object({
  status: z.enum(['success', 'error']),
  result: z.string().nullable(),
  newSessionId: z.string().optional(),
  error: z.string().optional(),
});
export type SandboxOutput = z.infer<typeof agentOutputSchema>;

/** The host's task rows (ScheduledTask). */
export type TaskSnapshot = Array<
  Record<'id' | 'groupFolder' | 'prompt' | 'scheduleType' | 'scheduleValue' | 'status', string> &
    Record<'nextRun' | 'lastRun' | 'lastResult', string | null>
>;

/** One line per zod issue, host and agent-runner alike. */
export const zodProblems = (error: {
  issues: readonly { path: readonly PropertyKey[]; message: string }[];
}) => error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
