import crypto from 'node:crypto';
import { zodProblems } from '../../contract/ipc.js';
import type http from 'node:http';
import { z } from 'zod';
import type { ChannelCallbacks, NewMessage } from '../../types.js';
import type { HostControl } from '../control.js';
import { getFile, postFile, type LocalFilesDeps } from './files.js';

export interface LocalChannelDeps {
  callbacks: ChannelCallbacks;
  history: History;
  assistantName: string;
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  status?(): unknown;
  /** Without these, their endpoints answer 503. */
  control?: HostControl;
  files?: LocalFilesDeps;
  port: number;
  tokenFile: string;
  heartbeatMs?: number;
}

export type HistoryMessage = Omit<NewMessage, 'chatJid' | 'isFromMe'>;
/** The newest `limit` messages between `after` and `before`, any order. */
export type History = (chatJid: string, after?: string, limit?: number, before?: string) => HistoryMessage[];
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

export function decode(raw: string, what: string) {
  try {
    return decodeURIComponent(raw);
  } catch {
    fail(400, `${what} is not valid percent-encoding: ${JSON.stringify(raw)}`);
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? ''))
    fail(415, 'content-type must be application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  // The rest is read and dropped, so the client gets the 413, not a reset.
  for await (const chunk of req as AsyncIterable<Buffer>)
    if ((size += chunk.length) <= MAX_BODY_BYTES) chunks.push(chunk);
  if (size > MAX_BODY_BYTES) fail(413, `body is too large (limit ${MAX_BODY_BYTES} bytes)`);
  const text = Buffer.concat(chunks).toString();
  if (!text.trim()) fail(400, 'body is empty');
  try {
    return JSON.parse(text);
  } catch (err) {
    fail(400, `invalid JSON: ${(err as Error).message}`);
  }
}

const body = async <T>(req: http.IncomingMessage, schema: z.ZodType<T>) =>
  parse(schema, await readJson(req), 'body');
function parse<T>(schema: z.ZodType<T>, value: unknown, root: string, got = ''): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  fail(400, zodProblems(parsed.error).replace('(root)', root) + got);
}

export const localChatIdSchema = z
  .string()
  .regex(/^local:[\w-]{1,64}$/, 'must be local:<name> (1-64 letters, digits, _ or -)');
// Stop and tasks reach WhatsApp chats too (for the CLI).
const anyChatId = z
  .string()
  .regex(
    /^local:[\w-]{1,64}$|^[\w.:-]{1,100}@(g\.us|s\.whatsapp\.net|lid)$/,
    'must be local:<name> or a WhatsApp chat id',
  );

function segment(raw: string, what: string, schema: z.ZodType<string> = localChatIdSchema) {
  const value = decode(raw, what);
  return parse(schema, value, what, ` (got ${JSON.stringify(value)})`);
}
export const chatOf = (raw: string) => segment(raw, 'chat id');
const anyChat = (raw: string) => segment(raw, 'chat id', anyChatId);

const required = (what: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined ? 'is required' : what),
});
const object = { error: 'must be a JSON object' };
const name = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(128).optional();
type Post = z.infer<typeof postSchema>;
const postSchema = z.object(
  {
    text: z.string(required('must be a string')).refine((t) => t.trim(), 'must not be empty'),
    sender: name,
    senderName: name,
  },
  object,
);
const time = z.iso
  .datetime({ offset: true, error: 'must be an ISO-8601 time' })
  .transform((t) => new Date(t).toISOString())
  .optional();
const querySchema = z.object({
  after: time,
  before: time,
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});
const actionSchema = z.object(
  { action: z.enum(['pause', 'resume', 'cancel'], required('must be pause, resume or cancel')) },
  object,
);
const phone = z
  .string({ error: 'must be a string' })
  .transform((p) => p.replace(/[\s().+-]/g, ''))
  .pipe(z.string().regex(/^\d{7,15}$/, 'must be a phone number with its country code'));
const linkSchema = z.object({ phone: phone.optional() }, object);
const taskId = z.string().max(200);
const groupJid = z.string().regex(/^[\w-]{1,100}@g\.us$/, 'must be a WhatsApp group id');

export function ingest(deps: LocalChannelDeps, jid: string, { text, sender, senderName = 'You' }: Post) {
  const cb = deps.callbacks;
  const id = crypto.randomUUID();
  const timestamp = new Date().toISOString();
  // Metadata first: an unregistered chat is still listed.
  cb.onChatMetadata({ jid, timestamp, name: jid.slice(6), channel: 'local', isGroup: false });
  // The token holder is the owner, unless posting as someone else.
  const m = { id, chatJid: jid, sender: sender ?? 'local-user', senderName, content: text, timestamp };
  cb.onMessage({ ...m, isFromMe: !sender, isBotMessage: false });
  return id;
}

export const whatsappView = (c: HostControl) => ({ ...c.whatsapp.state(), groups: c.whatsapp.groups() });
const outcome = <R extends { ok: boolean; error?: string }>(r: R) => {
  if (r.error) fail(409, r.error);
  return r;
};

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
    const jid = chatOf(params[0]);
    return { jid, registered: deps.isRegistered(jid) };
  },
  'GET api/chats/:chat/messages': ({ deps, params, query }) => {
    const jid = chatOf(params[0]);
    const { after, before, limit } = parse(querySchema, Object.fromEntries(query), 'query');
    const messages = deps
      .history(jid, after, limit, before)
      .map(({ id, sender, senderName, content: text, timestamp, isBotMessage: fromAssistant }) => {
        return { id, sender, senderName, text, timestamp, fromAssistant };
      });
    return { messages: messages.sort((a, b) => a.timestamp.localeCompare(b.timestamp)) };
  },
  'POST api/chats/:chat/messages': async ({ req, res, deps, params }) => {
    const jid = chatOf(params[0]);
    const post = await body(req, postSchema);
    res.statusCode = 202;
    return { id: ingest(deps, jid, post) };
  },
  'POST api/chats/:chat/files': postFile,
  'GET api/files/:folder/:name': (x) => getFile(x, x.params[0], true),
  'GET api/media/:chat/:name': (x) => getFile(x, x.files.folderOf(chatOf(x.params[0])), false),
  'POST api/chats/:chat/stop': async ({ control, params }) => ({
    stopped: await control.stopChat(anyChat(params[0])),
  }),
  'POST api/chats/:chat/typing': ({ res, control, params }) => {
    control.typing(chatOf(params[0]));
    res.statusCode = 204;
  },
  'GET api/chats/:chat/tasks': ({ control, params }) => ({ tasks: control.tasks(anyChat(params[0])) }),
  'POST api/chats/:chat/tasks/:task': async ({ req, control, params }) => {
    const jid = anyChat(params[0]);
    const id = segment(params[1], 'task id', taskId);
    return outcome(control.taskAction(jid, id, (await body(req, actionSchema)).action));
  },
  'GET api/whatsapp': ({ control }) => whatsappView(control),
  'POST api/whatsapp/link': async ({ req, res, control }) => {
    await control.whatsapp.link(await body(req, linkSchema));
    res.statusCode = 202;
    return whatsappView(control);
  },
  'POST api/whatsapp/unlink': async ({ control }) => (await control.whatsapp.unlink(), whatsappView(control)),
  'POST api/whatsapp/groups/:jid/register': async ({ control, params }) =>
    outcome(await control.whatsapp.register(segment(params[0], 'group id', groupJid))),
};
