import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChannelHealth } from '../../src/channel-health.js';
import { ChannelSendError } from '../../src/channels/send-error.js';
import { openStore, type Store } from '../../src/db/store.js';
import { Outbound, splitText, type OutboundDeps } from '../../src/outbound.js';
import type { Channel } from '../../src/types.js';
import { channelHarness, FAMILY, type Harness } from './whatsapp-fake-socket.js';

/** A channel that records what it took; `fail` decides per text whether a send throws. */
function fakeChannel(prefix = 'local:') {
  const sent: Array<{ jid: string; text: string; at: number }> = [];
  const state = { connected: true, fail: (_text: string): Error | undefined => undefined };
  const channel = {
    name: 'fake',
    connect: async () => undefined,
    disconnect: async () => undefined,
    isConnected: () => state.connected,
    ownsJid: (jid: string) => jid.startsWith(prefix),
    sendMessage: async (jid: string, text: string) => {
      const err = state.fail(text);
      if (err) throw err;
      sent.push({ jid, text, at: Date.now() });
    },
  } satisfies Channel;
  return { channel, sent, state };
}

describe('outbox', () => {
  let dir: string;
  let store: Store;
  let outbound: Outbound | undefined;
  const open = (deps: Partial<OutboundDeps> & { channels: OutboundDeps['channels'] }) => {
    outbound = new Outbound({ store, assistantName: 'Andy', ...deps });
    outbound.start();
    return outbound;
  };
  const history = (jid: string) => store.messages.history(jid, undefined, 5000).map((m) => m.content);
  const rows = () =>
    store.db.prepare('SELECT kind, state, attempts, error FROM outbox ORDER BY id').all() as Array<{
      kind: string;
      state: string;
      attempts: number;
      error: string | null;
    }>;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-outbox-'));
    store = openStore(path.join(dir, 'messages.db'));
  });
  afterEach(async () => {
    await outbound?.stop();
    outbound = undefined;
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores the text before sending and puts it in history only once the channel took it', async () => {
    const { channel, sent, state } = fakeChannel();
    state.connected = false;
    const out = open({ channels: () => [channel] });
    expect(out.enqueue('local:main', 'hello', { kind: 'agent', sender: 'Bot' })).toEqual({ ok: true, id: 1 });
    expect(rows()).toMatchObject([{ kind: 'agent', state: 'pending' }]);
    expect(history('local:main')).toEqual([]);
    state.connected = true;
    await vi.waitFor(() => expect(sent.map((s) => s.text)).toEqual(['hello']), { timeout: 3000 });
    expect(rows()).toMatchObject([{ state: 'sent' }]);
    const [stored] = store.messages.history('local:main', undefined);
    expect(stored).toMatchObject({ content: 'hello', senderName: 'Bot', isBotMessage: true, isFromMe: true });
  });

  it('paces over the bucket instead of dropping, in order', async () => {
    const { channel, sent } = fakeChannel();
    const out = open({
      channels: () => [channel],
      pacing: () => ({ key: 'main', perMinute: 600, burst: 2 }),
    });
    const started = Date.now();
    for (let i = 1; i <= 6; i++) out.enqueue('local:main', `m${i}`, { kind: 'agent' });
    await vi.waitFor(() => expect(sent).toHaveLength(6), { timeout: 5000 });
    expect(sent.map((s) => s.text)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    // Two at once, then one per 100 ms.
    expect(sent[1]!.at - started).toBeLessThan(80);
    expect(sent[5]!.at - started).toBeGreaterThanOrEqual(350);
    expect(history('local:main')).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  });

  it('releases an answer and everything ahead of it after answerMaxWaitMs; notices are never paced', async () => {
    const { channel, sent } = fakeChannel();
    const out = open({
      channels: () => [channel],
      pacing: () => ({ key: 'main', perMinute: 0.01, burst: 1 }),
      answerMaxWaitMs: 300,
    });
    out.enqueue('local:main', 'a1', { kind: 'agent' });
    out.enqueue('local:main', 'a2', { kind: 'agent' });
    out.enqueue('local:other', 'notice', { kind: 'notice' });
    await vi.waitFor(() => expect(sent.map((s) => s.text)).toEqual(['a1', 'notice']));
    const answered = Date.now();
    out.enqueue('local:main', 'the answer', { kind: 'answer' });
    await vi.waitFor(() => expect(sent).toHaveLength(4), { timeout: 3000 });
    expect(sent.map((s) => s.text)).toEqual(['a1', 'notice', 'a2', 'the answer']);
    expect(sent[2]!.at - answered).toBeGreaterThanOrEqual(250);
  });

  it('retries transient failures with back-off and fails permanent ones with the reason', async () => {
    const { channel, sent, state } = fakeChannel();
    let flaky = 2;
    state.fail = (text) =>
      text === 'bad'
        ? new ChannelSendError('recipient refused', 'permanent')
        : text === 'flaky' && flaky-- > 0
          ? new Error('socket hiccup')
          : undefined;
    const out = open({ channels: () => [channel] });
    for (const text of ['bad', 'flaky', 'after']) out.enqueue('local:main', text, { kind: 'agent' });
    out.enqueue('nobody:1', 'lost', { kind: 'agent' });
    await vi.waitFor(() => expect(sent.map((s) => s.text)).toEqual(['flaky', 'after']), { timeout: 8000 });
    expect(rows()).toEqual([
      { kind: 'agent', state: 'failed', attempts: 0, error: 'recipient refused' },
      { kind: 'agent', state: 'sent', attempts: 2, error: null },
      { kind: 'agent', state: 'sent', attempts: 0, error: null },
      { kind: 'agent', state: 'failed', attempts: 0, error: 'no channel owns this chat' },
    ]);
    expect(store.outbox.failed()).toBe(2);
  }, 15_000);

  it('splits long texts at line or word boundaries', () => {
    const para = 'x'.repeat(60);
    expect(splitText(`${para}\n\n${para}`, 100)).toEqual([para, para]);
    expect(splitText(`${para}\n${para}`, 100)).toEqual([para, para]);
    expect(splitText('y'.repeat(250), 100)).toEqual(['y'.repeat(100), 'y'.repeat(100), 'y'.repeat(50)]);
    expect(splitText('short', 100)).toEqual(['short']);
  });

  it('caps send_message per run: refuses past the cap with one notice, and an answer starts over', async () => {
    const { channel, sent } = fakeChannel();
    store.groups.upsert({
      jid: 'local:team',
      name: 'team',
      folder: 'team',
      trigger: '@Andy',
      requiresTrigger: false,
      isMain: false,
      addedAt: new Date().toISOString(),
    });
    const out = open({ channels: () => [channel], maxMessagesPerRun: 3 });
    const agent = { kind: 'agent' as const, sourceFolder: 'team' };
    for (let i = 1; i <= 3; i++) expect(out.enqueue('local:team', `m${i}`, agent).ok).toBe(true);
    const refused = out.enqueue('local:team', 'm4', agent);
    expect(refused).toEqual({
      ok: false,
      reason: expect.stringContaining('message cap reached (3 per run)'),
    });
    expect(out.enqueue('local:team', 'm5', agent).ok).toBe(false);
    out.enqueue('local:team', 'done', { kind: 'answer', sourceFolder: 'team' });
    expect(out.enqueue('local:team', 'next run', agent).ok).toBe(true);
    await vi.waitFor(() => expect(sent).toHaveLength(6));
    expect(sent.map((s) => s.text)).toEqual([
      'm1',
      'm2',
      'm3',
      'I stopped sending after 3 messages in one run.',
      'done',
      'next run',
    ]);
    out.newRun('team');
    for (let i = 1; i <= 3; i++) expect(out.enqueue('local:team', `r${i}`, agent).ok).toBe(true);
    expect(out.enqueue('local:team', 'r4', agent).ok).toBe(false);
  });
});

describe('outbox over WhatsApp', () => {
  let h: Harness;
  const stores: Store[] = [];
  const outbounds: Outbound[] = [];
  const dbPath = () => path.join(h.home, 'store', 'messages.db');
  const start = (channels: () => Channel[]) => {
    const store = openStore(dbPath());
    const outbound = new Outbound({ store, channels, assistantName: 'Andy' });
    stores.push(store);
    outbounds.push(outbound);
    outbound.start();
    return { store, outbound };
  };

  afterEach(async () => {
    for (const o of outbounds.splice(0)) await o.stop();
    for (const s of stores.splice(0)) s.close();
    await h.channel.disconnect();
    h.cleanup();
  });

  it('delivers 1,500 messages queued across a disconnect and a host restart, in order, once each', async () => {
    h = channelHarness();
    await h.channel.connect();
    const first = h.sock();
    first.open();
    // The connection drops right after the 100th message went out.
    const send = first.sendMessage.bind(first);
    first.sendMessage = async (jid, content) => {
      await send(jid, content);
      if (first.sent.length === 100) first.close(428);
      return undefined;
    };
    const host1 = start(() => [h.channel]);
    const texts = Array.from({ length: 1500 }, (_, i) => `message ${i + 1}`);
    for (const text of texts) expect(host1.outbound.enqueue(FAMILY, text, { kind: 'agent' }).ok).toBe(true);
    await vi.waitFor(() => expect(first.sent.length).toBe(100));
    // The host goes down while WhatsApp is down, with most of the messages still queued.
    await outbounds.shift()!.stop();
    stores.shift()!.close();
    expect(first.sent).toHaveLength(100);

    const host2 = start(() => [h.channel]);
    await vi.waitFor(() => expect(h.sockets.length).toBeGreaterThan(1), { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 50));
    expect(h.sockets.slice(1).flatMap((s) => s.sent)).toEqual([]);
    h.sock().open();
    await vi.waitFor(() => expect(h.sockets.flatMap((s) => s.sent)).toHaveLength(1500), { timeout: 20_000 });
    expect(h.sockets.flatMap((s) => s.sent.map((m) => m.text))).toEqual(texts.map((t) => `Andy: ${t}`));
    const stored = host2.store.messages.history(FAMILY, undefined, 5000);
    expect(stored.map((m) => m.content)).toEqual(texts);
    expect(host2.store.outbox.pendingChats()).toEqual([]);
  }, 30_000);

  it('tells local:main once when WhatsApp is logged out, and once when down a minute', async () => {
    const local = fakeChannel();
    const host: { outbound?: Outbound } = {};
    const health = new ChannelHealth({
      state: { get: (k) => stores[0]!.state.get(k), set: (k, v) => stores[0]!.state.set(k, v) },
      notify: (text) => void host.outbound!.enqueue('local:main', text, { kind: 'notice' }),
      downAfterMs: 50,
    });
    h = channelHarness({ onHealth: (s) => health.report(s) });
    host.outbound = start(() => [local.channel, h.channel]).outbound;
    await h.channel.connect();
    h.sock().open();
    h.sock().close(428);
    await vi.waitFor(() => expect(h.sockets).toHaveLength(2), { timeout: 5_000 });
    h.sock().open();
    await vi.waitFor(() => expect(local.sent).toHaveLength(1));
    expect(local.sent[0]!.text).toContain('WhatsApp has been disconnected for over a minute');

    await h.sock().logout();
    await vi.waitFor(() => expect(local.sent).toHaveLength(2));
    expect(local.sent[1]!.text).toMatch(/^WhatsApp was logged out/);
    health.report('logged-out');
    await new Promise((r) => setTimeout(r, 100));
    expect(local.sent).toHaveLength(2);
    expect(JSON.parse(stores[0]!.state.get('channel_health:whatsapp')!)).toMatchObject({
      state: 'logged-out',
      told: true,
    });
    health.stop();
  });
});
