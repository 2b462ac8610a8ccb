import crypto from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import { logger } from '../../logger.js';
import type { ChannelCallbacks, NewMessage } from '../../types.js';
import { zodProblems } from '../../util/zod-problems.js';
import { HttpError, readJsonBody, sendJson } from './http-io.js';

export type HistoryMessage = Omit<NewMessage, 'chatJid' | 'isFromMe'>;
/** The newest `limit` messages after `after` and before `before` (ISO times, exclusive), any order. */
export type History = (chatJid: string, after?: string, limit?: number, before?: string) => HistoryMessage[];

export interface ChatSummary {
  jid: string;
  name: string;
  registered: boolean;
  isMain: boolean;
  lastMessageTime: string;
}

export const localChatIdSchema = z
  .string()
  .regex(/^local:[A-Za-z0-9_-]{1,64}$/, 'must be local:<name>, name being 1-64 letters, digits, _ or -');

const name = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .optional();

const postSchema = z.object(
  {
    text: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
      .refine((text) => text.trim() !== '', 'must not be empty'),
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

const quote = (value: string) => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

/** A path segment checked against `schema`, its problems named after `what`. */
export function parseSegment(
  raw: string,
  what: string,
  schema: z.ZodType<string> = localChatIdSchema,
): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `${what} is not valid percent-encoding: ${quote(raw)}`);
  }
  const parsed = schema.safeParse(decoded);
  if (parsed.success) return parsed.data;
  throw new HttpError(400, `${zodProblems(parsed.error).replace('(root)', what)} (got ${quote(decoded)})`);
}

export const parseChat = (raw: string) => parseSegment(raw, 'chat id');

export async function postMessage(
  callbacks: ChannelCallbacks,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  jid: string,
): Promise<void> {
  const { text, sender, senderName } = parse(postSchema, await readJsonBody(req), 'body');
  sendJson(res, 202, { id: ingest(callbacks, jid, text, sender, senderName) });
}

/** Returns the message id. */
export function ingest(
  callbacks: ChannelCallbacks,
  jid: string,
  text: string,
  sender?: string,
  senderName?: string,
): string {
  const id = crypto.randomUUID();
  const timestamp = new Date().toISOString();
  // Metadata first: the chat is listed even when it is not registered and the text is dropped.
  callbacks.onChatMetadata({ jid, timestamp, name: jid.slice(6), channel: 'local', isGroup: false });
  callbacks.onMessage({
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

/** Oldest first, whatever order the host returns. */
export function getMessages(history: History, res: http.ServerResponse, jid: string, query: URLSearchParams) {
  const { after, before, limit } = parse(querySchema, Object.fromEntries(query), 'query');
  const messages = history(jid, after, limit, before)
    .map((m) => ({
      id: m.id,
      sender: m.sender,
      senderName: m.senderName,
      text: m.content,
      timestamp: m.timestamp,
      fromAssistant: m.isBotMessage,
    }))
    .sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  sendJson(res, 200, { messages });
}
