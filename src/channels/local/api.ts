import crypto from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import { logger } from '../../logger.js';
import type { ChannelCallbacks, NewMessage } from '../../types.js';
import { zodProblems } from '../../util/zod-problems.js';
import { readJsonBody, sendError, sendJson } from './http-io.js';

export type HistoryMessage = Omit<NewMessage, 'chatJid' | 'isFromMe'>;

export interface ChatSummary {
  jid: string;
  name: string;
  registered: boolean;
  isMain: boolean;
  lastMessageTime: string;
}

export interface ApiDeps {
  callbacks: ChannelCallbacks;
  history(chatJid: string, afterIso: string | undefined): HistoryMessage[];
}

export const LOCAL_JID_PREFIX = 'local:';
export const localChatIdSchema = z
  .string()
  .regex(/^local:[A-Za-z0-9_-]{1,64}$/, 'must be local:<name>, name being 1-64 letters, digits, _ or -');

const name = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .optional();

const postMessageSchema = z.object(
  {
    text: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
      .refine((text) => text.trim() !== '', 'must not be empty'),
    sender: name,
    senderName: name,
  },
  { error: 'must be a JSON object' },
);

const afterSchema = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()], {
    error: 'must be an ISO-8601 time, e.g. 2024-05-01T12:00:00Z',
  })
  .optional();

const problems = (error: z.ZodError, root: string) => zodProblems(error).replaceAll('(root)', root);
const quote = (value: string) => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

export function parseChat(raw: string): { jid: string } | { error: string } {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return { error: `chat id is not valid percent-encoding: ${quote(raw)}` };
  }
  const parsed = localChatIdSchema.safeParse(decoded);
  if (parsed.success) return { jid: parsed.data };
  return { error: `${problems(parsed.error, 'chat id')} (got ${quote(decoded)})` };
}

/** The routes that take input, validated in full before the host sees it. */
export class LocalApi {
  constructor(private readonly deps: ApiDeps) {}

  async postMessage(req: http.IncomingMessage, res: http.ServerResponse, jid: string): Promise<void> {
    const body = await readJsonBody(req);
    if (!body.ok) return sendError(res, body.status, body.error);
    const parsed = postMessageSchema.safeParse(body.value);
    if (!parsed.success) return sendError(res, 400, problems(parsed.error, 'body'));
    const { text, sender, senderName } = parsed.data;
    const id = crypto.randomUUID();
    const timestamp = new Date().toISOString();
    // Metadata first: the chat is listed even when it is not registered and the text is dropped.
    const chatName = jid.slice(LOCAL_JID_PREFIX.length);
    this.deps.callbacks.onChatMetadata({ jid, timestamp, name: chatName, channel: 'local', isGroup: false });
    this.deps.callbacks.onMessage({
      id,
      chatJid: jid,
      sender: sender ?? 'local-user',
      senderName: senderName ?? 'You',
      content: text,
      timestamp,
      // Whoever holds the token is the owner at the keyboard, unless they post as someone else.
      isFromMe: sender === undefined,
      isBotMessage: false,
    });
    logger.debug({ chatJid: jid, id }, 'local message received');
    sendJson(res, 202, { id });
  }

  /** Oldest first, whatever order the host returns. */
  getMessages(res: http.ServerResponse, jid: string, query: URLSearchParams): void {
    const after = afterSchema.safeParse(query.get('after') ?? undefined);
    if (!after.success) return sendError(res, 400, problems(after.error, 'after'));
    const messages = this.deps
      .history(jid, after.data && new Date(after.data).toISOString())
      .map((m) => ({
        id: m.id,
        sender: m.sender,
        senderName: m.senderName,
        text: m.content,
        timestamp: m.timestamp,
        fromAssistant: m.isBotMessage,
      }))
      .sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    sendJson(res, 200, { messages });
  }
}
