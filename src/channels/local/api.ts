import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { MAX_FILE_BYTES, safeFileName, zodProblems } from '../../contract/ipc.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { UnsafeEntryError, withSafeDir } from '../../safe-fs.js';
import type { ChannelCallbacks, NewMessage } from '../../types.js';
import type { HostControl } from '../control.js';

export interface LocalChannelDeps {
  callbacks: ChannelCallbacks;
  /** The newest `limit` between `after` and `before`, any order. */
  history(chatJid: string, after?: string, limit?: number, before?: string): HistoryMessage[];
  assistantName: string;
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  status?(): unknown;
  control?: HostControl;
  files?: LocalFilesDeps;
  port: number;
  tokenFile: string;
  heartbeatMs?: number;
}
export type LocalFilesDeps = Record<'ipcDir' | 'filesDir' | 'tmpDir', string> & {
  folderOf(jid: string): string | undefined;
};
export type HistoryMessage = Omit<NewMessage, 'chatJid' | 'isFromMe'>;
export type ChatSummary = Record<'jid' | 'name' | 'lastMessageTime', string> &
  Record<'registered' | 'isMain', boolean>;
export type Ctx = {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: [string, string];
  query: URLSearchParams;
  deps: LocalChannelDeps;
  control: HostControl;
  files: LocalFilesDeps;
};

export class HttpError extends Error {
  status = 500;
}
export function fail(status: number, message: string): never {
  throw Object.assign(new HttpError(message), { status });
}

export const MAX_BODY_BYTES = 1 << 20;
export const NO_STORE = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
export const sendJson = (res: http.ServerResponse, status: number, body: unknown) =>
  res
    .writeHead(status, { ...NO_STORE, 'Content-Type': 'application/json; charset=utf-8' })
    .end(JSON.stringify(body));

function decode(raw: string, what: string) {
  try {
    return decodeURIComponent(raw);
  } catch {
    fail(400, `${what} is not valid percent-encoding`);
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const r = schema.safeParse(value);
  return r.success ? r.data : fail(400, zodProblems(r.error).replace('(root)', root));
}

async function body<T>(req: http.IncomingMessage, schema: z.ZodType<T>) {
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? ''))
    fail(415, 'content-type must be application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  // Read to the end, so the client gets the 413, not a reset.
  for await (const chunk of req as AsyncIterable<Buffer>)
    if ((size += chunk.length) <= MAX_BODY_BYTES) chunks.push(chunk);
  if (size > MAX_BODY_BYTES) fail(413, `body is too large (limit ${MAX_BODY_BYTES} bytes)`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString());
  } catch (err) {
    fail(400, `invalid JSON: ${(err as Error).message}`);
  }
  return parse(schema, value, 'body');
}

const str = z.string();
const localChat = str.regex(/^local:[\w-]{1,64}$/, 'must be local:<name> (1-64 letters, digits, _ or -)');
// Stop and tasks reach WhatsApp chats too (for the CLI).
const anyChat = str.regex(
  /^local:[\w-]{1,64}$|^[\w.:-]{1,100}@(g\.us|s\.whatsapp\.net|lid)$/,
  'must be local:<name> or a WhatsApp chat id',
);
const segment = (raw: string, what = 'chat id', schema: z.ZodType<string> = localChat) =>
  parse(schema, decode(raw, what), what);
const any = (raw: string) => segment(raw, 'chat id', anyChat);

const name = str.trim().min(1).max(128).optional();
const postSchema = z.object({
  text: str.refine((t) => t.trim(), 'must not be empty'),
  sender: name,
  senderName: name,
});
const iso = (t: string) => new Date(t).toISOString();
const time = z.iso.datetime({ offset: true }).transform(iso).optional();
const count = z.coerce.number().int().min(1).max(1000).optional();
const range = z.object({ after: time, before: time, limit: count });
const group = str.regex(/^[\w-]{1,100}@g\.us$/, 'must be a WhatsApp group id');
const phone = str
  .transform((p) => p.replace(/[\s().+-]/g, ''))
  .pipe(str.regex(/^\d{7,15}$/, 'must be a phone number with its country code'));

function ingest({ callbacks: cb }: LocalChannelDeps, chatJid: string, post: z.infer<typeof postSchema>) {
  const id = crypto.randomUUID();
  const timestamp = new Date().toISOString();
  cb.onChatMetadata({ jid: chatJid, timestamp, name: chatJid.slice(6), channel: 'local', isGroup: false });
  // The token holder is the owner, unless posting as someone else.
  const { text: content, sender, senderName = 'You' } = post;
  const m = { id, chatJid, sender: sender ?? 'local-user', senderName, content, timestamp };
  cb.onMessage({ ...m, isFromMe: !sender, isBotMessage: false });
  return id;
}

const X = 'application/vnd.openxmlformats-officedocument.';
const TYPES = new Map(
  `png:image/png jpg:image/jpeg gif:image/gif webp:image/webp pdf:application/pdf txt:text/plain csv:text/csv
  json:application/json zip:application/zip docx:${X}wordprocessingml.document xlsx:${X}spreadsheetml.sheet`
    .split(/\s+/)
    .map((e) => e.split(':') as [string, string]),
);
const typeOf = (name: string) => TYPES.get(path.extname(name).slice(1).toLowerCase().replace('jpeg', 'jpg'));
const tooLarge = () => fail(413, `file is too large (limit ${MAX_FILE_BYTES >> 20} MiB)`);

/** Raw body; `X-File-Name` and `X-Caption` percent-encoded. */
async function postFile({ req, res, deps, files, params }: Ctx) {
  const jid = segment(params[0]);
  const folder = files.folderOf(jid);
  if (!folder) fail(409, `${jid} is not registered`);
  const type = req.headers['content-type']?.split(';')[0]!.trim().toLowerCase();
  const ext = [...TYPES].find(([, t]) => t === type)?.[0];
  if (!ext) fail(415, `file type not allowed: ${type}`);
  if (Number(req.headers['content-length']) > MAX_FILE_BYTES) tooLarge();
  const header = (h: string) => decode(String(req.headers[h] ?? ''), h);
  let name = safeFileName(header('x-file-name'), `upload.${ext}`);
  if (typeOf(name) !== type) name += `.${ext}`;
  const tmp = path.join(files.tmpDir, `upload-${crypto.randomUUID()}`);
  await fs.promises.mkdir(files.tmpDir, { recursive: true, mode: 0o700 });
  try {
    let size = 0;
    const cap = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) yield (size += chunk.length) > MAX_FILE_BYTES ? tooLarge() : chunk;
    };
    await pipeline(req, cap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    if (!size) fail(400, 'the file is empty');
    name = publishMedia(files, folder, tmp, name);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
  const ref = `[${type!.startsWith('image/') ? 'image' : 'document'}: /workspace/inbox/${MEDIA_DIR}/${name}]`;
  const caption = header('x-caption').trim();
  res.statusCode = 201;
  return { id: ingest(deps, jid, { text: caption ? `${caption}\n${ref}` : ref }), name };
}

function getFile({ res, files, params }: Ctx, folder: string | undefined, sent: boolean) {
  const name = params[1];
  let body: Buffer | undefined;
  if (folder && /^[\w-]{1,64}$/.test(folder) && safeFileName(name) === name)
    try {
      body = sent
        ? withSafeDir(files.filesDir, [folder], {}, (dir) => dir.readFile(name, MAX_FILE_BYTES))
        : inToAgent(files, folder, [MEDIA_DIR], (dir) => dir.readFile(name, 50 << 20));
    } catch (err) {
      if (!(err instanceof UnsafeEntryError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  if (!body) fail(404, 'no such file');
  const type = typeOf(name) ?? 'application/octet-stream';
  res
    .writeHead(200, {
      'Content-Type': type,
      'Content-Length': body.length,
      // Never rendered as a page of this origin.
      'Content-Disposition': `${type.startsWith('image/') ? 'inline' : 'attachment'}; filename="${name}"`,
      'Content-Security-Policy': "default-src 'none'; sandbox",
      'X-Content-Type-Options': 'nosniff',
    })
    .end(body);
}

export const whatsappView = (c: HostControl) => ({ ...c.whatsapp.state(), groups: c.whatsapp.groups() });
const outcome = <R extends { ok: boolean; error?: string }>(r: R) => (r.error ? fail(409, r.error) : r);

/** `METHOD path` → handler; what it returns is sent as JSON. */
export const ROUTES: Record<string, (x: Ctx) => unknown> = {
  // Never other channels' conversations.
  'GET api/chats': ({ deps }) => ({
    assistantName: deps.assistantName,
    chats: deps.chats().filter((c) => c.jid.startsWith('local:')),
    control: !!deps.control,
  }),
  'GET api/status': ({ deps }) => deps.status?.() ?? {},
  'GET api/chats/:chat': ({ deps, params }) => {
    const jid = segment(params[0]);
    return { jid, registered: deps.isRegistered(jid) };
  },
  'GET api/chats/:chat/messages': ({ deps, params, query }) => {
    const jid = segment(params[0]);
    const { after, before, limit } = parse(range, Object.fromEntries(query), 'query');
    const messages = deps
      .history(jid, after, limit, before)
      .map(({ id, sender, senderName, content: text, timestamp, isBotMessage: fromAssistant }) => {
        return { id, sender, senderName, text, timestamp, fromAssistant };
      });
    return { messages: messages.sort((a, b) => a.timestamp.localeCompare(b.timestamp)) };
  },
  'POST api/chats/:chat/messages': async ({ req, res, deps, params }) => {
    const jid = segment(params[0]);
    const post = await body(req, postSchema);
    res.statusCode = 202;
    return { id: ingest(deps, jid, post) };
  },
  'POST api/chats/:chat/files': postFile,
  'GET api/files/:folder/:name': (x) => getFile(x, x.params[0], true),
  'GET api/media/:chat/:name': (x) => getFile(x, x.files.folderOf(segment(x.params[0])), false),
  'POST api/chats/:chat/stop': async ({ control, params }) => ({
    stopped: await control.stopChat(any(params[0])),
  }),
  'POST api/chats/:chat/typing': ({ res, control, params }) => {
    control.typing(segment(params[0]));
    res.statusCode = 204;
  },
  'GET api/chats/:chat/tasks': ({ control, params }) => ({ tasks: control.tasks(any(params[0])) }),
  'POST api/chats/:chat/tasks/:task': async ({ req, control, params }) => {
    const jid = any(params[0]);
    const id = segment(params[1], 'task id', str.max(200));
    const { action } = await body(req, z.object({ action: z.enum(['pause', 'resume', 'cancel']) }));
    return outcome(control.taskAction(jid, id, action));
  },
  'GET api/whatsapp': ({ control }) => whatsappView(control),
  'POST api/whatsapp/link': async ({ req, res, control }) => {
    await control.whatsapp.link(await body(req, z.object({ phone: phone.optional() })));
    res.statusCode = 202;
    return whatsappView(control);
  },
  'POST api/whatsapp/unlink': async ({ control }) => (await control.whatsapp.unlink(), whatsappView(control)),
  'POST api/whatsapp/groups/:jid/register': async ({ control, params }) =>
    outcome(await control.whatsapp.register(segment(params[0], 'group id', group))),
};
