import { Boom } from '@hapi/boom';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelSendError } from '../../src/channels/send-error.js';
import { toSendError } from '../../src/channels/whatsapp/socket.js';
import type { ChannelState } from '../../src/channel-health.js';
import { channelHarness, FAMILY, OWN_LID, OWN_PN, waMessage, type Harness } from './whatsapp-fake-socket.js';

const ALICE = '15557770000@s.whatsapp.net';
const STRANGERS = '120363000000000099@g.us';

describe('WhatsApp channel: health', () => {
  let h: Harness;
  let health: ChannelState[];
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  async function start() {
    health = [];
    h = channelHarness({ onHealth: (s) => health.push(s) });
    await h.channel.connect();
  }

  it('reports up on open, down on a lost connection, up again after the reconnect', async () => {
    await start();
    h.sock().open();
    h.sock().close(DisconnectReason.connectionLost);
    await vi.waitFor(() => expect(h.sockets).toHaveLength(2), { timeout: 3000 });
    h.sock().close(DisconnectReason.restartRequired);
    await vi.waitFor(() => expect(h.sockets).toHaveLength(3));
    h.sock().open();
    expect(health).toEqual(['up', 'down', 'down', 'up']);
  });

  it('reports logged-out when the device was logged out, and stops for good', async () => {
    await start();
    h.sock().open();
    h.sock().close(DisconnectReason.loggedOut);
    await new Promise((r) => setTimeout(r, 20));
    expect(health).toEqual(['up', 'logged-out']);
    expect(h.sockets).toHaveLength(1);
  });

  it('reports logged-out when the stored link is no longer valid, down when another client took over', async () => {
    await start();
    h.sock().emit('connection.update', { qr: '2@abc,def,ghi,jkl' });
    expect(health).toEqual(['logged-out']);
    await h.channel.disconnect();
    h.cleanup();
    await start();
    h.sock().open();
    h.sock().close(DisconnectReason.connectionReplaced);
    expect(health).toEqual(['up', 'down']);
  });
});

describe('WhatsApp channel: presence', () => {
  let h: Harness;
  let typing: string[];
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  async function open() {
    typing = [];
    h = channelHarness({ onTyping: (jid) => typing.push(jid) });
    await h.channel.connect();
    h.sock().open();
  }

  it('subscribes to the registered chats on connect', async () => {
    await open();
    expect(h.sock().presenceSubscriptions.sort()).toEqual([FAMILY, OWN_PN].sort());
  });

  it('reports composing in a registered chat (LID chats by phone jid), not paused, not in an unregistered chat', async () => {
    await open();
    const sock = h.sock();
    sock.presenceUpdate(FAMILY, '15557770000:3@s.whatsapp.net', 'paused');
    sock.presenceUpdate(STRANGERS, ALICE, 'composing');
    sock.presenceUpdate(FAMILY, ALICE, 'composing');
    sock.presenceUpdate(OWN_LID, OWN_LID, 'composing');
    await vi.waitFor(() => expect(typing).toEqual([FAMILY, OWN_PN]));
    await new Promise((r) => setTimeout(r, 10));
    expect(typing).toEqual([FAMILY, OWN_PN]);
  });

  it('subscribes to a chat registered later on its first message', async () => {
    await open();
    const later = '120363000000000002@g.us';
    h.store.groups.upsert({
      jid: later,
      name: 'Later',
      folder: 'later',
      trigger: '@Andy',
      requiresTrigger: true,
      isMain: false,
      addedAt: new Date().toISOString(),
    });
    for (let i = 0; i < 2; i++)
      h.sock().upsert([waMessage({ remoteJid: later, participant: ALICE, message: { conversation: 'hi' } })]);
    await h.channel.settled();
    expect(h.sock().presenceSubscriptions).toContain(later);
    h.sock().presenceUpdate(later, ALICE, 'composing');
    await vi.waitFor(() => expect(typing).toEqual([later]));
  });
});

describe('WhatsApp channel: typed send errors', () => {
  it('classifies refusals as permanent, timeouts, closed connections and server errors as transient', () => {
    const kind = (status?: number) =>
      toSendError(status ? new Boom('x', { statusCode: status }) : new Error('x')).kind;
    expect([400, 403, 404, 406].map(kind)).toEqual(Array(4).fill('permanent'));
    expect([408, 428, 429, 500, 503, undefined].map(kind)).toEqual(Array(6).fill('transient'));
  });
});

describe('WhatsApp channel: typed send errors on a channel', () => {
  let h: Harness;
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  it('refuses an invalid jid as permanent', async () => {
    h = channelHarness();
    await h.channel.connect();
    h.sock().open();
    const err = await h.channel.sendMessage('not-a-number@s.whatsapp.net', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelSendError);
    expect((err as ChannelSendError).kind).toBe('permanent');
  });

  it('says whether a failed send is permanent (refused) or transient (timed out, not connected)', async () => {
    h = channelHarness();
    await h.channel.connect();
    const sock = h.sock();
    sock.open();
    sock.sendFailures.push(new Boom('not-acceptable', { statusCode: 406 }));
    await expect(h.channel.sendMessage(FAMILY, 'refused')).rejects.toMatchObject({ kind: 'permanent' });
    sock.sendFailures.push(new Boom('Timed Out', { statusCode: 408 }));
    await expect(h.channel.sendMessage(FAMILY, 'timed out')).rejects.toMatchObject({ kind: 'transient' });
    await h.channel.sendMessage(FAMILY, 'sent');
    expect(sock.sent.map((s) => s.text)).toEqual(['Andy: sent']);
    sock.close(DisconnectReason.connectionClosed);
    await expect(h.channel.sendMessage(FAMILY, 'offline')).rejects.toMatchObject({ kind: 'transient' });
  });
});
