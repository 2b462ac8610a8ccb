import crypto from 'node:crypto';
import { ipcFileSchema, ipcMessageSchema, MAX_FILE_BYTES, safeFileName } from '../contract/ipc.js';
import { UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import type { RegisteredGroup } from '../types.js';
import { zodProblems } from '../util/zod-problems.js';
import type { IpcResult } from './task-handler.js';

type SendResult = { ok: true } | { ok: false; reason: string };

export interface MessageIpcDeps {
  groupByJid(jid: string): RegisteredGroup | undefined;
  /** Refused (a cap, a rate limit): the file is quarantined and the agent told why. */
  send(jid: string, text: string, sender?: string): SendResult | Promise<SendResult>;
  /** For send_file: groups/ and the host-owned data/files/; without them files are refused. */
  files?: { groupsDir: string; filesDir: string };
}

/** The marker an outbox text carries for a sent file: data/files/<folder>/<name>. */
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
  const { chatJid } = parsed.data;
  if (!source.isMain && chatJid !== source.jid)
    return { ok: false, error: `group ${source.folder} may only message its own chat, not ${chatJid}` };
  if (source.isMain && !deps.groupByJid(chatJid))
    return { ok: false, error: `chat ${chatJid} is not a registered group` };
  let text: string;
  let sender: string | undefined;
  if (parsed.data.type === 'file') {
    const stored = copyOut(parsed.data.path, source.folder, deps);
    if (!stored.ok) return stored;
    text = `${parsed.data.caption ? `${parsed.data.caption}\n` : ''}[file: ${source.folder}/${stored.name}]`;
  } else ({ text, sender } = parsed.data);
  const sent = await deps.send(chatJid, text, sender);
  if (!sent.ok) return { ok: false, error: `message not sent: ${sent.reason}` };
  return isFile ? { ok: true, result: 'File sent.' } : { ok: true };
}

/**
 * The group folder is agent-writable: every component is opened O_NOFOLLOW (safe-fs), so a link
 * or FIFO anywhere on the path is refused, never followed to a host file.
 */
function copyOut(
  relative: string,
  folder: string,
  deps: MessageIpcDeps,
): { ok: true; name: string } | { ok: false; error: string } {
  if (!deps.files) return { ok: false, error: 'this host does not send files' };
  const segments = relative.split('/');
  const base = segments.pop()!;
  if (relative.startsWith('/') || [...segments, base].some((s) => !s || s === '.' || s === '..'))
    return { ok: false, error: `path must be relative to the group folder, without . or ..: ${relative}` };
  let bytes: Buffer | undefined;
  try {
    bytes = withSafeDir(deps.files.groupsDir, [folder, ...segments], {}, (dir) =>
      dir.readFile(base, MAX_FILE_BYTES),
    );
  } catch (err) {
    if (err instanceof UnsafeEntryError) return { ok: false, error: `file refused: ${err.reason}` };
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!bytes) return { ok: false, error: `no such file: ${relative}` };
  const name = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}-${safeFileName(base)}`;
  withSafeDir(deps.files.filesDir, [folder], { create: true }, (dir) => dir.createFile(name, bytes, 0o644));
  return { ok: true, name };
}
