import fs from 'node:fs';
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { LocalChannel } from '../../src/channels/local/local-channel.js';
import { startHarness, request, post } from '../helpers/local-harness.js';

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
      isFromMe: true, // the token holder is the owner
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
    { name: 'an empty body', body: '', status: 400, error: /invalid JSON/ },
    {
      name: 'missing text',
      body: '{}',
      status: 400,
      error: /^text: Invalid input: expected string, received undefined$/,
    },
    { name: 'empty text', body: '{"text":""}', status: 400, error: /^text: must not be empty$/ },
    { name: 'blank text', body: '{"text":"  \\n "}', status: 400, error: /^text: must not be empty$/ },
    {
      name: 'text not a string',
      body: '{"text":42}',
      status: 400,
      error: /^text: Invalid input: expected string, received number$/,
    },
    {
      name: 'a body that is not an object',
      body: '["hi"]',
      status: 400,
      error: /^body: Invalid input: expected object, received array$/,
    },
    { name: 'null body', body: 'null', status: 400, error: /^body: Invalid input: expected object/ },
    {
      name: 'sender not a string',
      body: '{"text":"hi","sender":7}',
      status: 400,
      error: /^sender: Invalid input: expected string/,
    },
    {
      name: 'empty senderName',
      body: '{"text":"hi","senderName":""}',
      status: 400,
      error: /senderName: Too small/,
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
      error: /^chat id: must be local:<name>/,
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
    expect(csp).toMatch(/script-src 'self';/);
    expect(csp).not.toMatch(/unsafe|nonce/);
    // No inline script or style, nothing from the network: the page's files and the vendored libraries.
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=/);
    expect(page.text).not.toMatch(/<(script|link|img)[^>]+(src|href)="https?:/);
    for (const [file, type, text] of [
      ['/page.js', 'text/javascript', "from '/vendor/marked.js'"],
      ['/page.css', 'text/css', '100dvh'],
      ['/vendor/marked.js', 'text/javascript', 'marked'],
      ['/vendor/purify.js', 'text/javascript', 'DOMPurify'],
    ]) {
      const asset = await request(h, { path: file!, auth: false, headers: { cookie: pair } });
      expect(asset.status, file).toBe(200);
      expect(asset.headers['content-type']).toBe(`${type}; charset=utf-8`);
      expect(asset.text).toContain(text);
    }
    expect((await request(h, { path: '/page.js', auth: false })).status).toBe(401);

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

  it('answers 404 for unknown paths and wrong methods', async () => {
    const h = await startHarness();
    expect((await request(h, { path: '/api/nope' })).status).toBe(404);
    const put = await request(h, { method: 'PUT', path: '/api/chats/local:main/messages', body: '{}' });
    expect([put.status, put.json().error]).toEqual([
      404,
      'no such endpoint: PUT /api/chats/local:main/messages',
    ]);
    expect(h.messages).toEqual([]);
  });
});
