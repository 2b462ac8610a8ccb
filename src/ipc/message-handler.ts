import { ipcMessageSchema } from '../contract/ipc.js';
import type { RegisteredGroup } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';
import type { IpcResult } from './task-handler.js';

export interface MessageIpcDeps {
  groupByJid(jid: string): RegisteredGroup | undefined;
  send(jid: string, text: string, sender?: string): Promise<void>;
}

/** A non-main group may message only its own chat, main any registered group. */
export async function handleMessageIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: MessageIpcDeps,
): Promise<IpcResult> {
  const parsed = ipcMessageSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, error: `invalid message file: ${zodProblems(parsed.error)}` };
  const { chatJid, text, sender } = parsed.data;
  if (!source.isMain && chatJid !== source.jid)
    return { ok: false, error: `group ${source.folder} may only message its own chat, not ${chatJid}` };
  if (source.isMain && !deps.groupByJid(chatJid))
    return { ok: false, error: `chat ${chatJid} is not a registered group` };
  await deps.send(chatJid, text, sender);
  return { ok: true };
}
