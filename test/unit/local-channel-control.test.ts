import { describe, expect, it } from 'vitest';
import type { HostControl, TaskView, WhatsAppState } from '../../src/channels/control.js';
import { request, startHarness, subscribe, waitFor, type Harness } from '../helpers/local-harness.js';

/** A host that records what it was asked. */
function fakeControl() {
  const calls: unknown[][] = [];
  const listeners = new Set<() => void>();
  const task: TaskView = {
    id: 'task-1',
    prompt: 'say hi',
    scheduleType: 'cron',
    scheduleValue: '0 9 * * *',
    status: 'active',
    nextRun: '2024-05-02T09:00:00.000Z',
    lastResult: null,
    runs: [],
  };
  const f: {
    calls: unknown[][];
    listeners: Set<() => void>;
    wa: WhatsAppState;
    fire(): void;
    control: HostControl;
  } = {
    calls,
    listeners,
    wa: { status: 'unlinked' } as WhatsAppState,
    fire: () => listeners.forEach((l) => l()),
    control: {
      stopChat: async (jid) => (calls.push(['stopChat', jid]), jid === 'local:main'),
      tasks: (jid) => (calls.push(['tasks', jid]), [task]),
      taskAction: (jid, id, action) => {
        calls.push(['taskAction', jid, id, action]);
        return id === 'task-1' ? { ok: true } : { ok: false, error: `task '${id}' not found` };
      },
      typing: (jid) => void calls.push(['typing', jid]),
      whatsapp: {
        state: () => f.wa,
        link: async (opts) => void calls.push(['link', opts]),
        unlink: async () => void calls.push(['unlink']),
        groups: () => [{ jid: '120363@g.us', name: 'Family', registered: false }],
        register: async (jid) => {
          calls.push(['register', jid]);
          return jid === '120363@g.us'
            ? { ok: true, folder: 'family' }
            : { ok: false, error: 'unknown group' };
        },
        onChange: (listener) => {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      },
    },
  };
  return f;
}

const json = { 'content-type': 'application/json' };
const send = (h: Harness, path: string, body?: string, headers: Record<string, string> = json) =>
  request(h, { method: 'POST', path, body, headers: body === undefined ? {} : headers });

describe('host controls over the local API', () => {
  it('stops a chat, signals typing and lists tasks', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    const stop = await send(h, '/api/chats/local%3Amain/stop');
    expect([stop.status, stop.json()]).toEqual([200, { stopped: true }]);
    expect((await send(h, '/api/chats/local:idle/stop')).json()).toEqual({ stopped: false });
    const typing = await send(h, '/api/chats/local:main/typing');
    expect([typing.status, typing.text]).toEqual([204, '']);
    const tasks = await request(h, { path: '/api/chats/local:main/tasks' });
    expect(tasks.status).toBe(200);
    expect((tasks.json().tasks as TaskView[]).map((t) => t.id)).toEqual(['task-1']);
    expect(f.calls).toEqual([
      ['stopChat', 'local:main'],
      ['stopChat', 'local:idle'],
      ['typing', 'local:main'],
      ['tasks', 'local:main'],
    ]);
    const chats = await request(h, { path: '/api/chats' });
    expect(chats.json().control).toBe(true);
  });

  it('pauses, resumes and cancels tasks, and says why one could not be changed', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    for (const action of ['pause', 'resume', 'cancel']) {
      const res = await send(h, '/api/chats/local:main/tasks/task-1', JSON.stringify({ action }));
      expect([res.status, res.json()]).toEqual([200, { ok: true }]);
    }
    const missing = await send(h, '/api/chats/local:main/tasks/task%202', '{"action":"pause"}');
    expect([missing.status, missing.json()]).toEqual([409, { error: "task 'task 2' not found" }]);
    expect(f.calls.at(-1)).toEqual(['taskAction', 'local:main', 'task 2', 'pause']);
  });

  it('answers bad requests with 400 and a clear message, before asking the host', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    const cases: Array<[string, string | undefined, number, RegExp]> = [
      ['/api/chats/local:main/tasks/task-1', '{}', 400, /^action: Invalid option: expected one of/],
      ['/api/chats/local:main/tasks/task-1', '{"action":"delete"}', 400, /^action: Invalid option/],
      ['/api/chats/local:main/tasks/task-1', '"pause"', 400, /^body: Invalid input: expected object/],
      ['/api/chats/local:main/tasks/task-1', '{"action":', 400, /^invalid JSON/],
      ['/api/chats/local:main/tasks/task-1', undefined, 415, /content-type must be application\/json/],
      ['/api/chats/local:main/tasks/%E0%A4%A', '{"action":"pause"}', 400, /^task id is not valid/],
      ['/api/chats/main/stop', undefined, 400, /^chat id: must be local:<name>/],
      ['/api/chats/local:a%20b/typing', undefined, 400, /^chat id: must be local:<name>/],
      ['/api/whatsapp/link', '{"phone":"call me"}', 400, /^phone: must be a phone number with its country/],
      ['/api/whatsapp/link', '{"phone":42}', 400, /^phone: Invalid input: expected string/],
      ['/api/whatsapp/link', '[]', 400, /^body: Invalid input: expected object/],
      ['/api/whatsapp/groups/family/register', undefined, 400, /^group id: must be a WhatsApp group id/],
    ];
    for (const [path, body, status, error] of cases) {
      const res = await send(h, path, body);
      expect([res.status, res.json().error], path).toEqual([status, expect.stringMatching(error)]);
    }
    expect(f.calls).toEqual([]);
  });

  it('links, unlinks and registers WhatsApp groups', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    const state = await request(h, { path: '/api/whatsapp' });
    expect(state.json()).toEqual({
      status: 'unlinked',
      groups: [{ jid: '120363@g.us', name: 'Family', registered: false }],
    });
    expect((await send(h, '/api/whatsapp/link', '{}')).status).toBe(202);
    const phone = await send(h, '/api/whatsapp/link', '{"phone":"+44 (7700) 900-123"}');
    expect(phone.status).toBe(202);
    expect((await send(h, '/api/whatsapp/unlink')).status).toBe(200);
    const registered = await send(h, '/api/whatsapp/groups/120363%40g.us/register');
    expect([registered.status, registered.json()]).toEqual([200, { ok: true, folder: 'family' }]);
    const unknown = await send(h, '/api/whatsapp/groups/999@g.us/register');
    expect([unknown.status, unknown.json()]).toEqual([409, { error: 'unknown group' }]);
    expect(f.calls).toEqual([
      ['link', {}],
      ['link', { phone: '447700900123' }],
      ['unlink'],
      ['register', '120363@g.us'],
      ['register', '999@g.us'],
    ]);
  });

  it('requires the token, a same-origin browser and the right method on every control route', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    const posts = [
      '/api/chats/local:main/stop',
      '/api/chats/local:main/typing',
      '/api/chats/local:main/tasks/task-1',
      '/api/whatsapp/link',
      '/api/whatsapp/unlink',
      '/api/whatsapp/groups/120363@g.us/register',
    ];
    for (const path of posts) {
      const body = '{"action":"pause"}';
      const anonymous = await request(h, { method: 'POST', path, body, headers: json, auth: false });
      expect([anonymous.status, anonymous.json().error], path).toEqual([401, expect.stringMatching(/token/)]);
      const wrong = await request(h, {
        method: 'POST',
        path,
        body,
        headers: { ...json, authorization: 'Bearer nope' },
      });
      expect(wrong.status, path).toBe(401);
      const foreign = await send(h, path, body, { ...json, origin: 'http://evil.example' });
      expect(foreign.status, path).toBe(403);
      const get = await request(h, { path });
      expect(get.status, path).toBe(404);
    }
    for (const path of ['/api/whatsapp', '/api/chats/local:main/tasks']) {
      expect((await request(h, { path, auth: false })).status, path).toBe(401);
      const put = await send(h, path, '{}');
      expect(put.status, path).toBe(404);
    }
    expect(f.calls).toEqual([]);
  });

  it('answers 503 when the host offers no controls', async () => {
    const h = await startHarness();
    const res = await send(h, '/api/chats/local:main/stop');
    expect([res.status, res.json().error]).toEqual([503, expect.stringMatching(/no controls/)]);
    expect((await request(h, { path: '/api/whatsapp' })).status).toBe(503);
    expect((await request(h, { path: '/api/chats' })).json().control).toBe(false);
  });

  it('streams the WhatsApp state on connect and on every change, and unsubscribes on disconnect', async () => {
    const f = fakeControl();
    const h = await startHarness({ control: f.control });
    const stream = subscribe(h);
    await stream.ready;
    const whatsapp = () => stream.events.filter((e) => e.event === 'whatsapp').map((e) => JSON.parse(e.data));
    await waitFor(() => whatsapp().length === 1, 'the initial state');
    expect(whatsapp()[0]).toMatchObject({ status: 'unlinked', groups: [{ name: 'Family' }] });
    f.wa = { status: 'linking', qrSvg: '<svg xmlns="http://www.w3.org/2000/svg"/>' };
    f.fire();
    f.wa = { status: 'linked', selfJid: '447700900123@s.whatsapp.net' };
    f.fire();
    await waitFor(() => whatsapp().length === 3, 'two changes');
    expect(whatsapp().map((s) => s.status)).toEqual(['unlinked', 'linking', 'linked']);
    expect(whatsapp()[1].qrSvg).toBe('<svg xmlns="http://www.w3.org/2000/svg"/>');
    expect(f.listeners.size).toBe(1);
    stream.close();
    await h.channel.disconnect();
    expect(f.listeners.size).toBe(0);
  });
});
