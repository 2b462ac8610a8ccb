import { ipcMessageSchema } from './schemas.js';
import type { RegisteredGroup } from '../types.js';

export type IpcResult = { ok: true } | { ok: false; error: string };

export interface MessageIpcDeps {
  groupByJid(jid: string): RegisteredGroup | undefined;
  send(jid: string, text: string, sender?: string): Promise<void>;
}

/**
 * One messages/*.json file from a sandbox. The source group comes from the directory the file was
 * found in, never from the file: a group can only write into its own mounted IPC dir, so it can't
 * pretend to be another. Non-main groups may message only their own chat; main may message any
 * registered group.
 */
export async function handleMessageIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: MessageIpcDeps,
): Promise<IpcResult> {
  const parsed = ipcMessageSchema.safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'file'}: ${i.message}`).join('; ');
    return { ok: false, error: `invalid message file: ${problems}` };
  }
  const { chatJid, text, sender } = parsed.data;
  if (!source.isMain && chatJid !== source.jid) {
    return { ok: false, error: `group ${source.folder} may only message its own chat, not ${chatJid}` };
  }
  if (source.isMain && !deps.groupByJid(chatJid)) {
    return { ok: false, error: `chat ${chatJid} is not a registered group` };
  }
  await deps.send(chatJid, text, sender);
  return { ok: true };
}
