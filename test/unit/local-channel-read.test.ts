import { describe, expect, it } from 'vitest';
import type { ChatSummary } from '../../src/channels/local/api.js';
import { SseParser, type SseEvent } from '../../src/channels/local/sse-parser.js';
import { startHarness, request, subscribe, waitFor } from '../helpers/local-harness.js';

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

  it('passes `before` and `limit` on for paging back through history', async () => {
    const calls: unknown[][] = [];
    const h = await startHarness({ history: (...args) => (calls.push(args), []) });
    const res = await request(h, {
      path: '/api/chats/local:main/messages?before=2024-05-01T12:00:00%2B02:00&limit=50',
    });
    expect(res.json()).toEqual({ messages: [] });
    expect(calls).toEqual([['local:main', undefined, 50, '2024-05-01T10:00:00.000Z']]);
    for (const query of ['limit=0', 'limit=1001', 'limit=ten', 'before=soon']) {
      const bad = await request(h, { path: `/api/chats/local:main/messages?${query}` });
      expect(bad.status, query).toBe(400);
      expect(bad.json().error).toMatch(new RegExp(`^${query.split('=')[0]}: `));
    }
    expect(calls).toHaveLength(1);
  });

  it('refuses an invalid `after` with 400', async () => {
    const h = await startHarness();
    for (const after of ['yesterday', '2024-13-45T00:00:00Z', '']) {
      const res = await request(h, { path: `/api/chats/local:main/messages?after=${after}` });
      expect(res.status, after).toBe(400);
      expect(res.json().error).toMatch(/^after: Invalid ISO datetime/);
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
