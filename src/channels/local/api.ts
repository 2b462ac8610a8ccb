import crypto from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import { logger } from '../../logger.js';
import type { ChannelCallbacks } from '../../types.js';
import { readJsonBody, sendError, sendJson } from './http-io.js';

/** One message as the host has it, inbound or the assistant's own. */
export interface HistoryMessage {
  id: string;
  sender: string;
  senderName: string;
  content: string;
  timestamp: string;
  isBotMessage: boolean;
}

export interface ChatSummary {
  jid: string;
  name: string;
  registered: boolean;
  isMain: boolean;
  lastMessageTime: string;
}

/** What the HTTP handlers need from the host. */
export interface ApiDeps {
  callbacks: ChannelCallbacks;
  history(chatJid: string, afterIso: string | undefined): HistoryMessage[];
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  assistantName: string;
  /** Extra JSON for GET /api/status (usage per group etc.). */
  status?(): unknown;
}

export const LOCAL_JID_PREFIX = 'local:';
export const localChatIdSchema = z
  .string()
  .regex(/^local:[A-Za-z0-9_-]{1,64}$/, 'must be local:<name>, name being 1-64 letters, digits, _ or -');

const optionalName = () =>
  z
    .string({ error: 'must be a string' })
    .trim()
    .min(1, 'must not be empty')
    .max(128, 'must be at most 128 characters')
    .optional();

export const postMessageSchema = z.object(
  {
    text: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
      .refine((text) => text.trim() !== '', 'must not be empty'),
    sender: optionalName(),
    senderName: optionalName(),
  },
  { error: 'must be a JSON object' },
);
export type PostMessageBody = z.infer<typeof postMessageSchema>;

const isoTime = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);
const afterSchema = z
  .string()
  .refine((value) => isoTime.safeParse(value).success, 'must be an ISO-8601 time, e.g. 2024-05-01T12:00:00Z')
  .optional();

/** "text: must be a string; sender: ..." — each issue named by its field (`root` for the value itself). */
export function describeIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : root;
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

function quoteForError(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** Decodes and validates the `<chat>` path segment. */
export function parseChatParam(raw: string): { ok: true; jid: string } | { ok: false; error: string } {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return { ok: false, error: `chat id is not valid percent-encoding: ${quoteForError(raw)}` };
  }
  const parsed = localChatIdSchema.safeParse(decoded);
  if (!parsed.success)
    return { ok: false, error: `${describeIssues(parsed.error, 'chat id')} (got ${quoteForError(decoded)})` };
  return { ok: true, jid: parsed.data };
}

/** The JSON handlers behind the routes. Each validates fully before it touches the host. */
export class LocalApi {
  constructor(private readonly deps: ApiDeps) {}

  async postMessage(req: http.IncomingMessage, res: http.ServerResponse, rawChat: string): Promise<void> {
    const chat = parseChatParam(rawChat);
    if (!chat.ok) return sendError(res, 400, chat.error);
    const body = await readJsonBody(req);
    if (!body.ok) return sendError(res, body.status, body.error);
    const parsed = postMessageSchema.safeParse(body.value);
    if (!parsed.success) return sendError(res, 400, describeIssues(parsed.error, 'body'));

    const id = crypto.randomUUID();
    const timestamp = new Date().toISOString();
    const name = chat.jid.slice(LOCAL_JID_PREFIX.length);
    // Metadata first so the chat is known even when it is not registered and the text is not kept.
    this.deps.callbacks.onChatMetadata({ jid: chat.jid, timestamp, name, channel: 'local', isGroup: false });
    this.deps.callbacks.onMessage({
      id,
      chatJid: chat.jid,
      sender: parsed.data.sender ?? 'local-user',
      senderName: parsed.data.senderName ?? 'You',
      content: parsed.data.text,
      timestamp,
      // Whoever holds the token is the owner at the keyboard, unless they post as someone else.
      isFromMe: parsed.data.sender === undefined,
      isBotMessage: false,
    });
    logger.debug({ chatJid: chat.jid, id }, 'local message received');
    sendJson(res, 202, { id });
  }

  getMessages(res: http.ServerResponse, rawChat: string, query: URLSearchParams): void {
    const chat = parseChatParam(rawChat);
    if (!chat.ok) return sendError(res, 400, chat.error);
    const after = afterSchema.safeParse(query.get('after') ?? undefined);
    if (!after.success) return sendError(res, 400, describeIssues(after.error, 'after'));
    const afterIso = after.data === undefined ? undefined : new Date(after.data).toISOString();
    const messages = this.deps
      .history(chat.jid, afterIso)
      .map((m) => ({
        id: m.id,
        sender: m.sender,
        senderName: m.senderName,
        text: m.content,
        timestamp: m.timestamp,
        fromAssistant: m.isBotMessage,
      }))
      // Stable sort: the contract is oldest first whatever order the host returns.
      .sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    sendJson(res, 200, { messages });
  }

  /** Only local chats: this channel neither shows nor serves other channels' conversations. */
  listChats(res: http.ServerResponse): void {
    const chats = this.deps.chats().filter((c) => c.jid.startsWith(LOCAL_JID_PREFIX));
    sendJson(res, 200, { assistantName: this.deps.assistantName, chats });
  }

  getChat(res: http.ServerResponse, rawChat: string): void {
    const chat = parseChatParam(rawChat);
    if (!chat.ok) return sendError(res, 400, chat.error);
    sendJson(res, 200, { jid: chat.jid, registered: this.deps.isRegistered(chat.jid) });
  }

  status(res: http.ServerResponse): void {
    sendJson(res, 200, this.deps.status?.() ?? {});
  }
}
