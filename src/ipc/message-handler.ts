import crypto from 'node:crypto';
import { ipcFileSchema, ipcMessageSchema, MAX_FILE_BYTES, safeFileName } from '../contract/ipc.js';
import { UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';
import type { IpcResult } from './task-handler.js';

type SendResult = { ok: true } | { ok: false; reason: string };

export interface MessageIpcDeps {
  groupByJid(jid: string): RegisteredGroup | undefined;
  send(jid: string, text: string, sender?: string): SendResult | Promise<SendResult>;
  /** For send_file; without it files are refused. */
  files?: { groupsDir: string; filesDir: string };
}

/** An outbox text's marker for a sent file: data/files/<folder>/<name>. */
export const FILE_MARKER = /^\[file: ([A-Za-z0-9_-]+)\/([A-Za-z0-9][A-Za-z0-9._-]*)\]$/m;

/** A non-main group may message only its own chat, main any registered group. */
export async function handleMessageIpc(
  payload: unknown,
  source: RegisteredGroup,
  deps: MessageIpcDeps,
): Promise<IpcResult> {
  const isFile = (payload as { type?: unknown } | null)?.type === 'file';
  const parsed = (isFile ? ipcFileSchema : ipcMessageSchema).safeParse(payload);
  if (!parsed.success) return { ok: false, error: `invalid message file: ${zodProblems(parsed.error)}` };
  const request = parsed.data;
  const jid = request.chatJid;
  if (!source.isMain && jid !== source.jid)
    return { ok: false, error: `group ${source.folder} may only message its own chat, not ${jid}` };
  if (source.isMain && !deps.groupByJid(jid))
    return { ok: false, error: `chat ${jid} is not a registered group` };
  let text: string;
  if (request.type === 'file') {
    const stored = copyOut(request.path, source.folder, deps);
    if (typeof stored !== 'string') return stored;
    text = `${request.caption ? `${request.caption}\n` : ''}[file: ${source.folder}/${stored}]`;
  } else text = request.text;
  const sent = await deps.send(jid, text, request.type === 'message' ? request.sender : undefined);
  if (!sent.ok) return { ok: false, error: `message not sent: ${sent.reason}` };
  return isFile ? { ok: true, result: 'File sent.' } : { ok: true };
}

function copyOut(relative: string, folder: string, { files }: MessageIpcDeps): string | IpcResult {
  if (!files) return { ok: false, error: 'this host does not send files' };
  const segments = relative.split('/');
  const base = segments.pop()!;
  if (relative.startsWith('/') || [...segments, base].some((s) => !s || s === '.' || s === '..'))
    return { ok: false, error: `path must be relative to the group folder, without . or ..: ${relative}` };
  let bytes: Buffer | undefined;
  try {
    // The group folder is agent-writable: a link or FIFO anywhere on the path is refused, never followed.
    bytes = withSafeDir(files.groupsDir, [folder, ...segments], {}, (dir) =>
      dir.readFile(base, MAX_FILE_BYTES),
    );
  } catch (err) {
    if (err instanceof UnsafeEntryError) return { ok: false, error: `file refused: ${err.reason}` };
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!bytes) return { ok: false, error: `no such file: ${relative}` };
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}-${safeFileName(base)}`;
  withSafeDir(files.filesDir, [folder], { create: true }, (dir) => dir.createFile(name, bytes));
  return name;
}
