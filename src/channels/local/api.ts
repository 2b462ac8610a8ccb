import crypto from 'node:crypto';
import { z } from 'zod';
import { logger } from '../../logger.js';
import type { ChannelCallbacks, NewMessage } from '../../types.js';
import { zodProblems } from '../../util/zod-problems.js';
import { getFile, postFile } from './files.js';
import { decode, HttpError, quote, readJsonBody, sendJson } from './http-io.js';
import type { Ctx, Routes } from './local-channel.js';

export type HistoryMessage = Omit<NewMessage, 'chatJid' | 'isFromMe'>;
/** The newest `limit` messages after `after` and before `before` (ISO times, exclusive), any order. */
export type History = (chatJid: string, after?: string, limit?: number, before?: string) => HistoryMessage[];
export type ChatSummary = {
  jid: string;
  name: string;
  registered: boolean;
  isMain: boolean;
  lastMessageTime: string;
};

export const localChatIdSchema = z
  .string()
  .regex(/^local:[\w-]{1,64}$/, 'must be local:<name>, name being 1-64 letters, digits, _ or -');

export const required = (what: string) => (issue: { input: unknown }) =>
  issue.input === undefined ? 'is required' : what;
const name = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .optional();
const postSchema = z.object(
  {
    text: z.string({ error: required('must be a string') }).refine((t) => t.trim(), 'must not be empty'),
    sender: name,
    senderName: name,
  },
  { error: 'must be a JSON object' },
);
const time = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()], {
    error: 'must be an ISO-8601 time, e.g. 2024-05-01T12:00:00Z',
  })
  .transform((t) => new Date(t).toISOString())
  .optional();
const querySchema = z.object({
  after: time,
  before: time,
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export function parse<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, zodProblems(parsed.error).replaceAll('(root)', root));
  return parsed.data;
}

/** A path segment checked against `schema`, its problems named after `what`. */
export function parseSegment(raw: string, what: string, schema: z.ZodType<string> = localChatIdSchema) {
  const value = decode(raw, what);
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new HttpError(400, `${zodProblems(parsed.error).replace('(root)', what)} (got ${quote(value)})`);
}

export const parseChat = (raw: string) => parseSegment(raw, 'chat id');

export function ingest(
  cb: ChannelCallbacks,
  jid: string,
  text: string,
  sender?: string,
  senderName?: string,
) {
  const id = crypto.randomUUID();
  const timestamp = new Date().toISOString();
  // Metadata first: the chat is listed even when it is not registered and the text is dropped.
  cb.onChatMetadata({ jid, timestamp, name: jid.slice(6), channel: 'local', isGroup: false });
  cb.onMessage({
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
  return id;
}

async function postMessage({ req, res, deps, params }: Ctx) {
  const jid = parseChat(params[0]);
  const { text, sender, senderName } = parse(postSchema, await readJsonBody(req), 'body');
  sendJson(res, 202, { id: ingest(deps.callbacks, jid, text, sender, senderName) });
}

function getMessages({ res, deps, params, query }: Ctx) {
  const jid = parseChat(params[0]);
  const { after, before, limit } = parse(querySchema, Object.fromEntries(query), 'query');
  const messages = deps
    .history(jid, after, limit, before)
    .map(({ id, sender, senderName, content, timestamp, isBotMessage }) => {
      return { id, sender, senderName, text: content, timestamp, fromAssistant: isBotMessage };
    })
    .sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  sendJson(res, 200, { messages });
}

export const CHAT_ROUTES: Routes = {
  'api/chats': {
    // Never other channels' conversations.
    GET: ({ res, deps }) =>
      sendJson(res, 200, {
        assistantName: deps.assistantName,
        chats: deps.chats().filter((c) => c.jid.startsWith('local:')),
        control: !!deps.control,
      }),
  },
  'api/status': { GET: ({ res, deps }) => sendJson(res, 200, deps.status?.() ?? {}) },
  'api/chats/:chat': {
    GET: ({ res, deps, params }) => {
      const jid = parseChat(params[0]);
      sendJson(res, 200, { jid, registered: deps.isRegistered(jid) });
    },
  },
  'api/chats/:chat/messages': { GET: getMessages, POST: postMessage },
  'api/chats/:chat/files': { POST: postFile },
  'api/files/:folder/:name': { GET: (x) => getFile(x, x.params[0], true) },
  'api/media/:chat/:name': { GET: (x) => getFile(x, x.files.folderOf(parseChat(x.params[0])), false) },
};
