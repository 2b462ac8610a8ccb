import type http from 'node:http';
import { z } from 'zod';
import type { HostControl } from '../control.js';
import { parse, parseChat, parseSegment } from './api.js';
import { readJsonBody, sendJson } from './http-io.js';

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  control: HostControl,
  params: string[],
) => Promise<void> | void;

const object = { error: 'must be a JSON object' };
const actionSchema = z.object(
  {
    action: z.enum(['pause', 'resume', 'cancel'], {
      error: (issue) => (issue.input === undefined ? 'is required' : 'must be pause, resume or cancel'),
    }),
  },
  object,
);
const linkSchema = z.object(
  {
    // Digits only, as WhatsApp asks for a pairing code: "+44 (0)7700-900 123" style is forgiven.
    phone: z
      .string({ error: 'must be a string' })
      .transform((p) => p.replace(/[\s().+-]/g, ''))
      .pipe(
        z.string().regex(/^\d{7,15}$/, 'must be a phone number with its country code, e.g. +44 7700 900123'),
      )
      .optional(),
  },
  object,
);
const taskId = z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const groupJid = z.string().regex(/^[\w-]{1,100}@g\.us$/, 'must be a WhatsApp group id, <digits>@g.us');
// Stop and tasks reach any registered chat (the CLI stops WhatsApp chats through here too).
const anyChat = z
  .string()
  .regex(
    /^local:[\w-]{1,64}$|^[\w.:-]{1,100}@(g\.us|s\.whatsapp\.net|lid)$/,
    'must be local:<name> or a WhatsApp chat id',
  );
const chatOf = (raw: string) => parseSegment(raw, 'chat id', anyChat);

export const whatsappView = (c: HostControl) => ({ ...c.whatsapp.state(), groups: c.whatsapp.groups() });

function outcome(res: http.ServerResponse, result: { ok: true } | { ok: false; error: string }) {
  sendJson(res, result.ok ? 200 : 409, result.ok ? result : { error: result.error });
}

/** What the page may ask of the host besides chatting, by path and method. */
export const CONTROL_ROUTES: Array<[RegExp, Record<string, Handler>]> = [
  [
    /^\/api\/chats\/([^/]+)\/stop\/?$/,
    {
      POST: async (_, res, c, [chat]) => sendJson(res, 200, { stopped: await c.stopChat(chatOf(chat!)) }),
    },
  ],
  [
    /^\/api\/chats\/([^/]+)\/typing\/?$/,
    {
      POST: (_, res, c, [chat]) => {
        c.typing(parseChat(chat!));
        res.writeHead(204, { 'Cache-Control': 'no-store' }).end();
      },
    },
  ],
  [
    /^\/api\/chats\/([^/]+)\/tasks\/?$/,
    { GET: (_, res, c, [chat]) => sendJson(res, 200, { tasks: c.tasks(chatOf(chat!)) }) },
  ],
  [
    /^\/api\/chats\/([^/]+)\/tasks\/([^/]+)\/?$/,
    {
      POST: async (req, res, c, [chat, task]) => {
        const jid = chatOf(chat!);
        const id = parseSegment(task!, 'task id', taskId);
        const { action } = parse(actionSchema, await readJsonBody(req), 'body');
        outcome(res, c.taskAction(jid, id, action));
      },
    },
  ],
  [/^\/api\/whatsapp\/?$/, { GET: (_, res, c) => sendJson(res, 200, whatsappView(c)) }],
  [
    /^\/api\/whatsapp\/link\/?$/,
    {
      POST: async (req, res, c) => {
        const { phone } = parse(linkSchema, await readJsonBody(req), 'body');
        await c.whatsapp.link(phone ? { phone } : {});
        sendJson(res, 202, whatsappView(c));
      },
    },
  ],
  [
    /^\/api\/whatsapp\/unlink\/?$/,
    {
      POST: async (_, res, c) => {
        await c.whatsapp.unlink();
        sendJson(res, 200, whatsappView(c));
      },
    },
  ],
  [
    /^\/api\/whatsapp\/groups\/([^/]+)\/register\/?$/,
    {
      POST: async (_, res, c, [jid]) =>
        outcome(res, await c.whatsapp.register(parseSegment(jid!, 'group id', groupJid))),
    },
  ],
];
