import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatSummary, HistoryMessage } from '../../src/channels/local/api.js';
import { LocalChannel, type LocalChannelDeps } from '../../src/channels/local/local-channel.js';
import { SseParser, type SseEvent } from '../../src/channels/local/sse-parser.js';
import { ChatError, runChat } from '../../src/cli/chat.js';
import type { NewMessage } from '../../src/types.js';

type ChatMeta = Parameters<LocalChannelDeps['callbacks']['onChatMetadata']>[0];

interface Harness {
  home: string;
  tokenFile: string;
  channel: LocalChannel;
  messages: NewMessage[];
  metadata: ChatMeta[];
  historyCalls: Array<{ chat: string; after: string | undefined }>;
  stored: HistoryMessage[];
  deps: LocalChannelDeps;
}

const harnesses: Harness[] = [];

async function startHarness(overrides: Partial<LocalChannelDeps> = {}, home?: string): Promise<Harness> {
  const dir = home ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-local-'));
  const h = {
    home: dir,
    tokenFile: path.join(dir, 'data', 'local-channel.token'),
    messages: [] as NewMessage[],
    metadata: [] as ChatMeta[],
    historyCalls: [] as Harness['historyCalls'],
    stored: [] as HistoryMessage[],
  } as Harness;
  const chats: ChatSummary[] = [
    {
      jid: 'local:main',
      name: 'main',
      registered: true,
      isMain: true,
      lastMessageTime: '2024-01-01T00:00:00.000Z',
    },
    {
      jid: '123@g.us',
      name: 'Family',
      registered: true,
      isMain: false,
      lastMessageTime: '2024-01-01T00:00:00.000Z',
    },
  ];
  h.deps = {
    port: 0,
    tokenFile: h.tokenFile,
    assistantName: 'Andy',
    callbacks: {
      onMessage: (m) => h.messages.push(m),
      onChatMetadata: (c) => h.metadata.push(c),
    },
    history: (chat, after) => {
      h.historyCalls.push({ chat, after });
      return h.stored;
    },
    chats: () => chats,
    isRegistered: (jid) => jid === 'local:main',
    ...overrides,
  };
  h.channel = new LocalChannel(h.deps);
  await h.channel.connect();
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    await h.channel.disconnect();
    fs.rmSync(h.home, { recursive: true, force: true });
  }
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: () => Record<string, unknown>;
}

function request(
  h: Harness,
  opts: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    auth?: boolean;
  },
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth !== false) headers.authorization ??= `Bearer ${h.channel.token}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: h.channel.port, method: opts.method ?? 'GET', path: opts.path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    // A server that answers early (413) may close while we still write; the response still counts.
    req.on('error', reject);
    req.end(opts.body);
  });
}

function post(h: Harness, body: string | Buffer, chat = 'local:main', headers: Record<string, string> = {}) {
  return request(h, {
    method: 'POST',
    path: `/api/chats/${chat}/messages`,
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Opens /api/events and collects parsed events until closed. */
function subscribe(h: Harness, headers: Record<string, string> = {}) {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  let raw = '';
  let ended = false;
  let req: http.ClientRequest | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    req = http.get(
      {
        host: '127.0.0.1',
        port: h.channel.port,
        path: '/api/events',
        headers: { authorization: `Bearer ${h.channel.token}`, ...headers },
      },
      (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          raw += chunk;
          events.push(...parser.push(chunk));
        });
        res.on('end', () => (ended = true));
        res.on('close', () => (ended = true));
        resolve();
      },
    );
    req.on('error', (err) => (ended ? undefined : reject(err)));
  });
  return {
    ready,
    events,
    raw: () => raw,
    ended: () => ended,
    close: () => req?.destroy(),
  };
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('posting a message', () => {
  it('accepts a valid post with 202 and hands one message to the host', async () => {
    const h = await startHarness();
    const res = await post(h, JSON.stringify({ text: '@Andy hello' }));
    expect(res.status).toBe(202);
    const { id } = res.json();
    expect(typeof id).toBe('string');
    expect(h.metadata).toHaveLength(1);
    expect(h.metadata[0]).toMatchObject({
      jid: 'local:main',
      name: 'main',
      channel: 'local',
      isGroup: false,
    });
    expect(h.messages).toHaveLength(1);
    const message = h.messages[0]!;
    expect(message).toMatchObject({
      id,
      chatJid: 'local:main',
      sender: 'local-user',
      senderName: 'You',
      content: '@Andy hello',
      isFromMe: false,
      isBotMessage: false,
    });
    expect(new Date(message.timestamp).toISOString()).toBe(message.timestamp);
    expect(h.metadata[0]!.timestamp).toBe(message.timestamp);
  });

  it('passes sender and senderName through and accepts a percent-encoded chat id', async () => {
    const h = await startHarness();
    const res = await post(
      h,
      JSON.stringify({ text: 'hi', sender: 'bob', senderName: 'Bob' }),
      'local%3Anotes',
    );
    expect(res.status).toBe(202);
    expect(h.messages[0]).toMatchObject({
      chatJid: 'local:notes',
      sender: 'bob',
      senderName: 'Bob',
      content: 'hi',
    });
  });

  it('gives every message its own id', async () => {
    const h = await startHarness();
    const a = (await post(h, JSON.stringify({ text: 'one' }))).json().id;
    const b = (await post(h, JSON.stringify({ text: 'two' }))).json().id;
    expect(a).not.toBe(b);
  });

  const badInputs: Array<{
    name: string;
    body: string | Buffer;
    chat?: string;
    type?: string;
    status: number;
    error: RegExp;
  }> = [
    { name: 'invalid JSON', body: '{"text":', status: 400, error: /invalid JSON/ },
    { name: 'an empty body', body: '', status: 400, error: /body is empty/ },
    { name: 'missing text', body: '{}', status: 400, error: /^text: is required$/ },
    { name: 'empty text', body: '{"text":""}', status: 400, error: /^text: must not be empty$/ },
    { name: 'blank text', body: '{"text":"  \\n "}', status: 400, error: /^text: must not be empty$/ },
    { name: 'text not a string', body: '{"text":42}', status: 400, error: /^text: must be a string$/ },
    {
      name: 'a body that is not an object',
      body: '["hi"]',
      status: 400,
      error: /^body: must be a JSON object$/,
    },
    { name: 'null body', body: 'null', status: 400, error: /^body: must be a JSON object$/ },
    {
      name: 'sender not a string',
      body: '{"text":"hi","sender":7}',
      status: 400,
      error: /^sender: must be a string$/,
    },
    {
      name: 'empty senderName',
      body: '{"text":"hi","senderName":""}',
      status: 400,
      error: /senderName: must not be empty/,
    },
    {
      name: 'a wrong content-type',
      body: '{"text":"hi"}',
      type: 'text/plain',
      status: 415,
      error: /content-type must be application\/json/,
    },
    {
      name: 'a body over 1 MiB',
      body: JSON.stringify({ text: 'x'.repeat(1024 * 1024) }),
      status: 413,
      error: /too large/,
    },
    {
      name: 'a non-local chat id',
      body: '{"text":"hi"}',
      chat: '123%40g.us',
      status: 400,
      error: /chat id: must be local:<name>.*"123@g.us"/,
    },
    {
      name: 'an empty chat name',
      body: '{"text":"hi"}',
      chat: 'local:',
      status: 400,
      error: /chat id: must be local:<name>/,
    },
    {
      name: 'a chat name with a slash',
      body: '{"text":"hi"}',
      chat: 'local%3Aa%2Fb',
      status: 400,
      error: /chat id/,
    },
    {
      name: 'a chat name over 64 chars',
      body: '{"text":"hi"}',
      chat: `local:${'a'.repeat(65)}`,
      status: 400,
      error: /chat id/,
    },
    {
      name: 'broken percent-encoding',
      body: '{"text":"hi"}',
      chat: 'local%3Aa%E0%A4%A',
      status: 400,
      error: /percent-encoding/,
    },
  ];

  it.each(badInputs)('refuses $name with $status, says why, and passes nothing on', async (bad) => {
    const h = await startHarness();
    const res = await post(h, bad.body, bad.chat, bad.type ? { 'content-type': bad.type } : {});
    expect(res.status).toBe(bad.status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json().error).toMatch(bad.error);
    expect(h.messages).toEqual([]);
    expect(h.metadata).toEqual([]);
  });

  it('refuses a chunked body that grows past the limit', async () => {
    const h = await startHarness();
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: h.channel.port,
          method: 'POST',
          path: '/api/chats/local:main/messages',
          headers: { authorization: `Bearer ${h.channel.token}`, 'content-type': 'application/json' },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write('{"text":"');
      for (let i = 0; i < 5; i++) req.write('y'.repeat(300 * 1024));
      req.end('"}');
    });
    expect(res).toBe(413);
    expect(h.messages).toEqual([]);
  });
});

describe('security checks', () => {
  it('answers 401 without a token or with a wrong one, and passes nothing on', async () => {
    const h = await startHarness();
    const none = await request(h, { path: '/api/chats', auth: false });
    expect(none.status).toBe(401);
    expect(none.json().error).toMatch(/missing token/);
    const wrong = await request(h, { path: '/api/chats', headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(wrong.json().error).toMatch(/wrong token/);
    const badCookie = await request(h, {
      path: '/',
      auth: false,
      headers: { cookie: `nanoclaw_local_${h.channel.port}=${'a'.repeat(43)}` },
    });
    expect(badCookie.status).toBe(401);
    const wrongPost = await post(h, '{"text":"hi"}', 'local:main', {
      authorization: `Bearer ${h.channel.token}x`,
    });
    expect(wrongPost.status).toBe(401);
    expect(h.messages).toEqual([]);
  });

  it('refuses a foreign Host header (DNS rebinding) even with a valid token', async () => {
    const h = await startHarness();
    for (const host of [`evil.example:${h.channel.port}`, `127.0.0.1:${h.channel.port + 1}`, 'localhost']) {
      const res = await post(h, '{"text":"hi"}', 'local:main', { host });
      expect(res.status, host).toBe(403);
      expect(res.json().error).toMatch(/host not allowed/);
    }
    const get = await request(h, { path: '/api/chats', headers: { host: `evil.example:${h.channel.port}` } });
    expect(get.status).toBe(403);
    expect(h.messages).toEqual([]);
    const local = await request(h, { path: '/api/chats', headers: { host: `localhost:${h.channel.port}` } });
    expect(local.status).toBe(200);
  });

  it('refuses cross-origin writes, including from another port on the same machine', async () => {
    const h = await startHarness();
    for (const origin of ['http://evil.example', `http://127.0.0.1:${h.channel.port + 1}`, 'null']) {
      const res = await post(h, '{"text":"hi"}', 'local:main', { origin });
      expect(res.status, origin).toBe(403);
      expect(res.json().error).toMatch(/cross-origin/);
    }
    expect(h.messages).toEqual([]);
    const same = await post(h, '{"text":"hi"}', 'local:main', {
      origin: `http://localhost:${h.channel.port}`,
    });
    expect(same.status).toBe(202);
    expect(h.messages).toHaveLength(1);
  });

  it('swaps the link token for an HttpOnly SameSite=Strict cookie and redirects to /', async () => {
    const h = await startHarness();
    const res = await request(h, { path: `/?token=${h.channel.token}`, auth: false });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/');
    const cookie = res.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const pair = cookie.split(';')[0]!;

    const page = await request(h, { path: '/', auth: false, headers: { cookie: `other=1; ${pair}` } });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'none'/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(page.text).toContain(`<script nonce="${nonce}">`);
    expect(page.text).not.toContain('__CSP_NONCE__');
    expect(page.text).not.toMatch(/<(script|link|img)[^>]+(src|href)="https?:/);

    const api = await request(h, { path: '/api/chats', auth: false, headers: { cookie: pair } });
    expect(api.status).toBe(200);

    const wrong = await request(h, { path: '/?token=not-the-token', auth: false });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
  });

  it('creates the token file 0600 and keeps the token across restarts', async () => {
    const h = await startHarness();
    const token = h.channel.token;
    expect(fs.statSync(h.tokenFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(h.tokenFile, 'utf8').trim()).toBe(token);
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(h.channel.url()).toBe(`http://127.0.0.1:${h.channel.port}/?token=${token}`);
    await h.channel.disconnect();

    fs.chmodSync(h.tokenFile, 0o644);
    const again = new LocalChannel(h.deps);
    await again.connect();
    try {
      expect(again.token).toBe(token);
      expect(fs.statSync(h.tokenFile).mode & 0o777).toBe(0o600);
    } finally {
      await again.disconnect();
    }

    fs.writeFileSync(h.tokenFile, 'short\n');
    const fresh = new LocalChannel(h.deps);
    await fresh.connect();
    try {
      expect(fresh.token).not.toBe(token);
      expect(fresh.token).not.toBe('short');
      expect(fs.readFileSync(h.tokenFile, 'utf8').trim()).toBe(fresh.token);
    } finally {
      await fresh.disconnect();
    }
  });

  it('answers 404 for unknown paths and 405 for wrong methods', async () => {
    const h = await startHarness();
    expect((await request(h, { path: '/api/nope' })).status).toBe(404);
    const put = await request(h, { method: 'PUT', path: '/api/chats/local:main/messages', body: '{}' });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('GET, POST');
  });
});

describe('reading', () => {
  it('returns history oldest first in the contract shape and passes `after` on', async () => {
    const h = await startHarness();
    h.stored.push(
      {
        id: 'b',
        sender: 'Andy',
        senderName: 'Andy',
        content: 'echo: hi',
        timestamp: '2024-05-01T12:00:02.000Z',
        isBotMessage: true,
      },
      {
        id: 'a',
        sender: 'local-user',
        senderName: 'You',
        content: 'hi',
        timestamp: '2024-05-01T12:00:01.000Z',
        isBotMessage: false,
      },
    );
    const res = await request(h, {
      path: '/api/chats/local%3Amain/messages?after=2024-05-01T12:00:00%2B02:00',
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({
      messages: [
        {
          id: 'a',
          sender: 'local-user',
          senderName: 'You',
          text: 'hi',
          timestamp: '2024-05-01T12:00:01.000Z',
          fromAssistant: false,
        },
        {
          id: 'b',
          sender: 'Andy',
          senderName: 'Andy',
          text: 'echo: hi',
          timestamp: '2024-05-01T12:00:02.000Z',
          fromAssistant: true,
        },
      ],
    });
    expect(h.historyCalls).toEqual([{ chat: 'local:main', after: '2024-05-01T10:00:00.000Z' }]);

    await request(h, { path: '/api/chats/local:main/messages' });
    expect(h.historyCalls[1]).toEqual({ chat: 'local:main', after: undefined });
  });

  it('refuses an invalid `after` with 400', async () => {
    const h = await startHarness();
    for (const after of ['yesterday', '2024-13-45T00:00:00Z', '']) {
      const res = await request(h, { path: `/api/chats/local:main/messages?after=${after}` });
      expect(res.status, after).toBe(400);
      expect(res.json().error).toMatch(/^after: must be an ISO-8601 time/);
    }
    expect(h.historyCalls).toEqual([]);
  });

  it('lists only local chats with the assistant name, reports registration, and serves status', async () => {
    const h = await startHarness({ status: () => ({ usage: { main: 12 } }) });
    const chats = (await request(h, { path: '/api/chats' })).json();
    expect(chats.assistantName).toBe('Andy');
    expect((chats.chats as ChatSummary[]).map((c) => c.jid)).toEqual(['local:main']);
    expect((await request(h, { path: '/api/chats/local:main' })).json()).toEqual({
      jid: 'local:main',
      registered: true,
    });
    expect((await request(h, { path: '/api/chats/local:other' })).json()).toEqual({
      jid: 'local:other',
      registered: false,
    });
    expect((await request(h, { path: '/api/status' })).json()).toEqual({ usage: { main: 12 } });

    const bare = await startHarness();
    expect((await request(bare, { path: '/api/status' })).json()).toEqual({});
  });
});

describe('events', () => {
  it('streams message and typing events, replays typing to late subscribers, and ends on disconnect', async () => {
    const h = await startHarness();
    const first = subscribe(h);
    await first.ready;
    await h.channel.setTyping('local:main', true);
    await h.channel.sendMessage('local:main', 'line one\nline two');
    await waitFor(() => first.events.length >= 2, 'two events');
    expect(first.events[0]).toEqual({
      event: 'typing',
      data: JSON.stringify({ chat: 'local:main', isTyping: true }),
    });
    expect(first.events[1]!.event).toBe('message');
    const message = JSON.parse(first.events[1]!.data) as Record<string, string>;
    expect(message).toMatchObject({ chat: 'local:main', text: 'line one\nline two', sender: 'Andy' });
    expect(new Date(message.timestamp!).toISOString()).toBe(message.timestamp);

    const late = subscribe(h);
    await late.ready;
    await waitFor(() => late.events.length >= 1, 'replayed typing');
    expect(JSON.parse(late.events[0]!.data)).toEqual({ chat: 'local:main', isTyping: true });

    await h.channel.setTyping('local:main', false);
    await waitFor(() => first.events.length >= 3, 'typing off');
    expect(JSON.parse(first.events[2]!.data)).toEqual({ chat: 'local:main', isTyping: false });

    await h.channel.disconnect();
    await waitFor(() => first.ended() && late.ended(), 'streams to end');
    expect(h.channel.isConnected()).toBe(false);
  });

  it('sends a comment heartbeat', async () => {
    const h = await startHarness({ heartbeatMs: 30 });
    const stream = subscribe(h);
    await stream.ready;
    await waitFor(() => stream.raw().includes(': heartbeat\n\n'), 'heartbeat');
    stream.close();
  });

  it('parses events split across chunks and line endings', () => {
    const parser = new SseParser();
    const text =
      'retry: 10\n: c\r\nevent: typing\r\ndata: {"a":\ndata: 1}\r\n\r\nevent: message\ndata: x\n\n';
    const events: SseEvent[] = [];
    for (const ch of text) events.push(...parser.push(ch));
    expect(events).toEqual([
      { event: 'typing', data: '{"a":\n1}' },
      { event: 'message', data: 'x' },
    ]);
  });
});

describe('nanoclaw chat', () => {
  let echoHarness: Harness;

  beforeEach(async () => {
    const holder: { channel?: LocalChannel } = {};
    echoHarness = await startHarness({
      callbacks: {
        onChatMetadata: () => undefined,
        onMessage: (m) => {
          const channel = holder.channel!;
          void (async () => {
            await channel.setTyping(m.chatJid, true);
            await new Promise((r) => setTimeout(r, 50));
            await channel.sendMessage('local:elsewhere', 'not for this chat');
            await channel.sendMessage(m.chatJid, `echo: ${m.content}`);
            await channel.setTyping(m.chatJid, false);
          })();
        },
      },
    });
    holder.channel = echoHarness.channel;
  });

  it('posts typed lines and prints the replies for its chat, then ends on EOF', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'main',
      input,
      output,
    });
    await waitFor(() => printed.includes('Ctrl-D'), 'banner');
    input.write('hello there\n');
    await waitFor(() => printed.includes('Andy: echo: hello there'), 'the reply');
    expect(printed).toContain('… Andy is working');
    expect(printed).not.toContain('not for this chat');
    input.end();
    await done;
  });

  it('warns when the chat is not registered and reports a refused post', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'local:side',
      input,
      output,
    });
    await waitFor(() => printed.includes('not registered'), 'the warning');
    expect(printed).toContain('nanoclaw groups register --jid local:side');
    input.end(`${'z'.repeat(1024 * 1024 + 10)}\n`);
    await done;
    expect(printed).toMatch(/! not sent: body is too large/);
  });

  it('tells the user to run `nanoclaw start` when there is no token or no server', async () => {
    const emptyHome = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-chat-'));
    try {
      await expect(
        runChat({ home: emptyHome, port: echoHarness.channel.port, chat: 'main' }),
      ).rejects.toThrow(/No local channel token.*nanoclaw start/);
      const closedPort = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(port));
        });
      });
      const attempt = runChat({ home: echoHarness.home, port: closedPort, chat: 'main' });
      await expect(attempt).rejects.toBeInstanceOf(ChatError);
      await expect(attempt).rejects.toThrow(
        /not running at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*nanoclaw start/,
      );
      await expect(runChat({ home: echoHarness.home, port: 1, chat: 'bad/name' })).rejects.toThrow(
        /--chat must be/,
      );
    } finally {
      fs.rmSync(emptyHome, { recursive: true, force: true });
    }
  });

  it('ends with a clear error when the assistant goes away mid-chat', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'main',
      input,
      output,
    });
    await waitFor(() => printed.includes('Ctrl-D'), 'banner');
    await echoHarness.channel.disconnect();
    await expect(done).rejects.toThrow(/closed the connection.*nanoclaw start/);
  });
});
