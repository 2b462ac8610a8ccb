import crypto from 'node:crypto';
import {
  ipcFileSchema,
  ipcMessageSchema,
  MAX_FILE_BYTES,
  safeFileName,
  type IpcResponse,
  zodProblems,
} from '../contract/ipc.js';
import { UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';

type SendResult = { ok: true } | { ok: false; reason: string };

export interface MessageIpcDeps {
  groupByJid(jid: string): RegisteredGroup | undefined;
  send(jid: string, text: string, sender?: string): SendResult | Promise<SendResult>;
  files: { groupsDir: string; filesDir: string };
}

/** An outbox text's marker for a sent file: data/files/<folder>/<name>. */
export const FILE_MARKER = /^\[file: ([A-Za-z0-9_-]+)\/([A-Za-z0-9][A-Za-z0-9._-]*)\]$/m;

const refuse = (error: string) => ({ ok: false as const, error });

export async function handleMessageIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: MessageIpcDeps,
): Promise<IpcResponse> {
  const isFile = (payload as { type?: unknown } | null)?.type === 'file';
  const parsed = (isFile ? ipcFileSchema : ipcMessageSchema).safeParse(payload);
  if (!parsed.success) return refuse(`invalid message file: ${zodProblems(parsed.error)}`);
  const request = parsed.data;
  const jid = request.chatJid;
  if (!source.isMain && jid !== source.jid)
    return refuse(`group ${source.folder} may only message its own chat, not ${jid}`);
  if (source.isMain && !deps.groupByJid(jid)) return refuse(`chat ${jid} is not a registered group`);
  let text = request.type === 'message' ? request.text : copyOut(request.path, source.folder, deps);
  if (typeof text !== 'string') return text;
  if (request.type === 'file')
    text = `${request.caption ? `${request.caption}\n` : ''}[file: ${source.folder}/${text}]`;
  const sent = await deps.send(jid, text, request.type === 'message' ? request.sender : undefined);
  if (!sent.ok) return refuse(`message not sent: ${sent.reason}`);
  return isFile ? { ok: true, result: 'File sent.' } : { ok: true };
}

/** group folder → data/files/<folder>/<new name>. */
function copyOut(relative: string, folder: string, { files }: MessageIpcDeps): string | IpcResponse {
  const segments = [folder, ...relative.split('/')];
  const base = segments.pop()!;
  let bytes: Buffer | undefined;
  try {
    // Agent-writable: a link, FIFO or `..` on the path is refused, never followed.
    bytes = withSafeDir(files.groupsDir, segments, {}, (dir) => dir.readFile(base, MAX_FILE_BYTES));
  } catch (err) {
    if (err instanceof UnsafeEntryError) return refuse(`file refused: ${err.reason}`);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!bytes) return refuse(`no such file: ${relative}`);
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}-${safeFileName(base)}`;
  withSafeDir(files.filesDir, [folder], { create: true }, (dir) => dir.createFile(name, bytes));
  return name;
}
