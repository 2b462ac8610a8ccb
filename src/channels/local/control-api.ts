import { z } from 'zod';
import type { HostControl, Result } from '../control.js';
import { parse, parseChat, parseSegment, required } from './api.js';
import { NO_STORE, readJsonBody, sendJson } from './http-io.js';
import type { Ctx, Routes } from './local-channel.js';

const object = { error: 'must be a JSON object' };
const actionSchema = z.object(
  { action: z.enum(['pause', 'resume', 'cancel'], { error: required('must be pause, resume or cancel') }) },
  object,
);
const phone = z
  .string({ error: 'must be a string' })
  // Digits only, as WhatsApp asks for a pairing code: "+44 (0)7700-900 123" style is forgiven.
  .transform((p) => p.replace(/[\s().+-]/g, ''))
  .pipe(z.string().regex(/^\d{7,15}$/, 'must be a phone number with its country code, e.g. +44 7700 900123'));
const linkSchema = z.object({ phone: phone.optional() }, object);
const taskId = z.string().max(200, 'must be at most 200 characters');
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
const sendState = ({ res, control }: Ctx, status = 200) => sendJson(res, status, whatsappView(control));
const outcome = ({ res }: Ctx, r: Result) =>
  r.ok ? sendJson(res, 200, r) : sendJson(res, 409, { error: r.error });

/** What the page (and the CLI) may ask of the host besides chatting. */
export const CONTROL_ROUTES: Routes = {
  'api/chats/:chat/stop': {
    POST: async (x) => sendJson(x.res, 200, { stopped: await x.control.stopChat(chatOf(x.params[0])) }),
  },
  'api/chats/:chat/typing': {
    POST: ({ res, control, params }) => {
      control.typing(parseChat(params[0]));
      res.writeHead(204, NO_STORE).end();
    },
  },
  'api/chats/:chat/tasks': {
    GET: ({ res, control, params }) => sendJson(res, 200, { tasks: control.tasks(chatOf(params[0])) }),
  },
  'api/chats/:chat/tasks/:task': {
    POST: async (x) => {
      const jid = chatOf(x.params[0]);
      const id = parseSegment(x.params[1], 'task id', taskId);
      const { action } = parse(actionSchema, await readJsonBody(x.req), 'body');
      outcome(x, x.control.taskAction(jid, id, action));
    },
  },
  'api/whatsapp': { GET: (x) => sendState(x) },
  'api/whatsapp/link': {
    POST: async (x) => {
      await x.control.whatsapp.link(parse(linkSchema, await readJsonBody(x.req), 'body'));
      sendState(x, 202);
    },
  },
  'api/whatsapp/unlink': {
    POST: async (x) => {
      await x.control.whatsapp.unlink();
      sendState(x);
    },
  },
  'api/whatsapp/groups/:jid/register': {
    POST: async (x) =>
      outcome(x, await x.control.whatsapp.register(parseSegment(x.params[0], 'group id', groupJid))),
  },
};
