import { z } from 'zod';

/**
 * Files an agent writes into the agent-to-host part of its IPC (data/ipc/<folder>/from-agent/ on
 * the host, /workspace/ipc in the sandbox). Extra fields are ignored. The source group is never taken from a file: the host
 * knows it from the directory the file was found in.
 */

/** messages/*.json */
export const ipcMessageSchema = z.object({
  type: z.literal('message'),
  chatJid: z.string().min(1),
  text: z.string().min(1),
  sender: z.string().min(1).max(64).optional(),
});
export type IpcMessage = z.infer<typeof ipcMessageSchema>;

const taskId = z.string().min(1).max(128);
const scheduleType = z.enum(['cron', 'interval', 'once']);

/** tasks/*.json */
export const ipcTaskSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('schedule_task'),
    taskId: taskId.optional(),
    prompt: z.string().min(1),
    schedule_type: scheduleType,
    schedule_value: z.string().min(1),
    context_mode: z.enum(['group', 'isolated']).optional(),
    target_group_jid: z.string().min(1).optional(),
  }),
  z.object({ type: z.literal('pause_task'), taskId }),
  z.object({ type: z.literal('resume_task'), taskId }),
  z.object({ type: z.literal('cancel_task'), taskId }),
  z.object({
    type: z.literal('update_task'),
    taskId,
    prompt: z.string().min(1).optional(),
    schedule_type: scheduleType.optional(),
    schedule_value: z.string().min(1).optional(),
    context_mode: z.enum(['group', 'isolated']).optional(),
  }),
  z.object({
    type: z.literal('register_group'),
    jid: z.string().min(1),
    name: z.string().min(1),
    folder: z.string().min(1),
    trigger: z.string().min(1),
    requires_trigger: z.boolean().optional(),
  }),
  z.object({ type: z.literal('refresh_groups') }),
]);
export type IpcTask = z.infer<typeof ipcTaskSchema>;

/** Largest IPC file the host will read; bigger ones are quarantined unread. */
export const MAX_IPC_FILE_BYTES = 1024 * 1024;
