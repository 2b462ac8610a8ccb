import Long from 'long';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChannelSendError } from '../../src/channels/send-error.js';
import { channelHarness, FAMILY, OWN_LID, OWN_PN, waMessage, type Harness } from './whatsapp-fake-socket.js';

const ALICE = '15557770000@s.whatsapp.net';
const BOB = '15558880000@s.whatsapp.net';

describe('WhatsApp channel: inbound messages', () => {
  let h: Harness;
  beforeEach(async () => {
    h = channelHarness();
    await h.channel.connect();
    h.sock().open();
  });
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  it('stores plain and extended text with sender, name and ISO time (number or Long seconds)', async () => {
    h.sock().upsert([
      waMessage({
        remoteJid: FAMILY,
        participant: ALICE,
        pushName: 'Alice',
        message: { conversation: '@Andy hello' },
        timestamp: 1_700_000_000,
      }),
      waMessage({
        remoteJid: FAMILY,
        participant: BOB,
        pushName: 'Bob',
        message: { extendedTextMessage: { text: 'see https://example.org' } },
        timestamp: Long.fromNumber(1_700_000_060, true),
      }),
    ]);
    await h.channel.settled();
    expect(
      h
        .history(FAMILY)
        .map((m) => [m.sender, m.senderName, m.content, m.timestamp, m.isFromMe, m.isBotMessage]),
    ).toEqual([
      [ALICE, 'Alice', '@Andy hello', '2023-11-14T22:13:20.000Z', false, false],
      [BOB, 'Bob', 'see https://example.org', '2023-11-14T22:14:20.000Z', false, false],
    ]);
    expect(h.chat(FAMILY)).toMatchObject({
      channel: 'whatsapp',
      isGroup: true,
      lastMessageTime: '2023-11-14T22:14:20.000Z',
    });
  });

  it('reads text inside disappearing-message envelopes and from the append upsert type', async () => {
    h.sock().upsert(
      [
        waMessage({
          remoteJid: FAMILY,
          participant: ALICE,
          pushName: 'Alice',
          message: { ephemeralMessage: { message: { extendedTextMessage: { text: 'vanishing' } } } },
        }),
      ],
      'append',
    );
    await h.channel.settled();
    expect(h.history(FAMILY).map((m) => m.content)).toEqual(['vanishing']);
  });

  it('falls back to the phone number when there is no push name', async () => {
    h.sock().upsert([waMessage({ remoteJid: FAMILY, participant: ALICE, message: { conversation: 'hi' } })]);
    await h.channel.settled();
    expect(h.history(FAMILY)[0]).toMatchObject({ sender: ALICE, senderName: '15557770000' });
  });

  it('ignores status broadcasts entirely', async () => {
    h.sock().upsert([
      waMessage({
        remoteJid: 'status@broadcast',
        participant: ALICE,
        pushName: 'Alice',
        message: { conversation: 'my status' },
      }),
    ]);
    await h.channel.settled();
    expect(h.chat('status@broadcast')).toBeUndefined();
    expect(h.history('status@broadcast')).toEqual([]);
  });

  it('reports unregistered chats as metadata only', async () => {
    const other = '120363999999999999@g.us';
    h.sock().upsert([
      waMessage({
        remoteJid: other,
        participant: ALICE,
        pushName: 'Alice',
        message: { conversation: 'hi all' },
      }),
      waMessage({ remoteJid: BOB, pushName: 'Bob', message: { conversation: 'hi you' } }),
    ]);
    await h.channel.settled();
    expect(h.chat(other)).toMatchObject({ isGroup: true, channel: 'whatsapp' });
    expect(h.chat(BOB)).toMatchObject({ isGroup: false, channel: 'whatsapp' });
    expect(h.history(other)).toEqual([]);
    expect(h.history(BOB)).toEqual([]);
  });

  it('translates LID chats and senders to phone jids when the mapping is known', async () => {
    const sock = h.sock();
    sock.lids.set('11112222@lid', ALICE); // known to Baileys' LID store
    sock.emit('lid-mapping.update', { lid: '33334444@lid', pn: BOB });
    sock.upsert([
      // self-chat addressed by our own LID
      waMessage({
        remoteJid: OWN_LID,
        fromMe: true,
        pushName: 'Me',
        message: { conversation: 'note to self' },
      }),
      waMessage({
        remoteJid: FAMILY,
        participant: '11112222@lid',
        message: { conversation: 'from lid store' },
      }),
      waMessage({ remoteJid: FAMILY, participant: '33334444@lid', message: { conversation: 'from event' } }),
      waMessage({
        remoteJid: FAMILY,
        participant: '55556666@lid',
        participantAlt: '15559990000@s.whatsapp.net',
        message: { conversation: 'from key alt' },
      }),
      waMessage({ remoteJid: FAMILY, participant: '77778888@lid', message: { conversation: 'unknown lid' } }),
    ]);
    await h.channel.settled();
    expect(h.history(OWN_PN).map((m) => [m.sender, m.content])).toEqual([[OWN_PN, 'note to self']]);
    expect(h.history(FAMILY).map((m) => [m.sender, m.senderName])).toEqual([
      [ALICE, '15557770000'],
      [BOB, '15558880000'],
      ['15559990000@s.whatsapp.net', '15559990000'],
      ['77778888@lid', '77778888'],
    ]);
    expect(h.chat(OWN_LID)).toBeUndefined();
  });

  it('flags our own prefixed messages as the assistant and keeps other own messages as the person', async () => {
    h.sock().upsert([
      waMessage({
        remoteJid: OWN_PN,
        fromMe: true,
        pushName: 'Me',
        message: { conversation: 'remind me at 5' },
      }),
      waMessage({
        remoteJid: OWN_PN,
        fromMe: true,
        pushName: 'Me',
        message: { conversation: 'Andy: Sure, at 5.' },
      }),
      // someone else typing the prefix is not the assistant
      waMessage({ remoteJid: FAMILY, participant: ALICE, message: { conversation: 'Andy: fake' } }),
    ]);
    await h.channel.settled();
    expect(h.history(OWN_PN).map((m) => [m.content, m.isFromMe, m.isBotMessage])).toEqual([
      ['remind me at 5', true, false],
      ['Andy: Sure, at 5.', true, true],
    ]);
    expect(h.history(FAMILY).map((m) => m.isBotMessage)).toEqual([false]);
  });

  it('with its own number, everything sent from that number is the assistant', async () => {
    const own = channelHarness({ assistantHasOwnNumber: true });
    try {
      await own.channel.connect();
      own.sock().open();
      own
        .sock()
        .upsert([
          waMessage({ remoteJid: FAMILY, fromMe: true, message: { conversation: 'Here you go' } }),
          waMessage({ remoteJid: FAMILY, participant: ALICE, message: { conversation: '@Andy thanks' } }),
        ]);
      await own.channel.settled();
      expect(own.history(FAMILY).map((m) => [m.sender, m.isBotMessage])).toEqual([
        [OWN_PN, true],
        [ALICE, false],
      ]);
    } finally {
      await own.channel.disconnect();
      own.cleanup();
    }
  });

  it('skips reactions and protocol messages', async () => {
    h.sock().upsert([
      waMessage({
        remoteJid: FAMILY,
        participant: ALICE,
        message: { reactionMessage: { text: '👍', key: { remoteJid: FAMILY, id: 'X' } } },
      }),
      waMessage({ remoteJid: FAMILY, participant: ALICE, message: { protocolMessage: { type: 0 } } }),
    ]);
    await h.channel.settled();
    expect(h.history(FAMILY)).toEqual([]);
  });
});

describe('WhatsApp channel: outbound messages', () => {
  let h: Harness;
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  it('prefixes the assistant name on a shared number', async () => {
    h = channelHarness();
    await h.channel.connect();
    h.sock().open();
    await h.channel.sendMessage(FAMILY, 'Hello there');
    expect(h.sock().sent).toEqual([{ jid: FAMILY, text: 'Andy: Hello there' }]);
  });

  it('sends without prefix when the assistant has its own number', async () => {
    h = channelHarness({ assistantHasOwnNumber: true });
    await h.channel.connect();
    h.sock().open();
    await h.channel.sendMessage(FAMILY, 'Hello there');
    expect(h.sock().sent).toEqual([{ jid: FAMILY, text: 'Hello there' }]);
  });

  it('refuses as transient while disconnected, so the outbox keeps the message', async () => {
    h = channelHarness();
    await h.channel.connect();
    const err = await h.channel.sendMessage(FAMILY, 'one').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelSendError);
    expect(err).toMatchObject({ kind: 'transient', message: 'whatsapp is not connected' });
    h.sock().open();
    await h.channel.sendMessage(FAMILY, 'one');
    await h.channel.sendMessage(OWN_PN, 'two');
    expect(h.sock().sent.map((s) => s.text)).toEqual(['Andy: one', 'Andy: two']);
  });

  it('throws a failed send as transient and sends on the new socket after a reconnect', async () => {
    h = channelHarness();
    await h.channel.connect();
    const first = h.sock();
    first.sendFailures.push(new Error('Connection Closed'));
    first.open();
    const err = await h.channel.sendMessage(FAMILY, 'a').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'transient' });
    expect(first.sent).toEqual([]);

    first.close(DisconnectReason.restartRequired);
    await expect(h.channel.sendMessage(FAMILY, 'a')).rejects.toMatchObject({ kind: 'transient' });
    await new Promise((r) => setTimeout(r, 20));
    const second = h.sock();
    expect(second).not.toBe(first);
    second.open();
    await h.channel.sendMessage(FAMILY, 'a');
    expect(second.sent.map((s) => s.text)).toEqual(['Andy: a']);
  });

  it('sets typing presence only while connected', async () => {
    h = channelHarness();
    await h.channel.connect();
    await h.channel.setTyping(FAMILY, true);
    expect(h.sock().presence).toEqual([]);
    h.sock().open();
    await h.channel.setTyping(FAMILY, true);
    await h.channel.setTyping(FAMILY, false);
    expect(h.sock().presence).toEqual([
      { type: 'composing', jid: FAMILY },
      { type: 'paused', jid: FAMILY },
    ]);
  });

  it('exposes its own jid for registering the self-chat, and owns WhatsApp jids only', async () => {
    h = channelHarness();
    await h.channel.connect();
    expect(h.channel.ownJid()).toBeUndefined();
    h.sock().open();
    expect(h.channel.ownJid()).toBe(OWN_PN);
    expect(h.channel.isConnected()).toBe(true);
    expect([FAMILY, OWN_PN, OWN_LID, 'local:main'].map((j) => h.channel.ownsJid(j))).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });
});

describe('WhatsApp channel: group sync', () => {
  let h: Harness;
  let synced: number;
  beforeEach(() => {
    synced = 0;
    h = channelHarness({ onGroupsSynced: () => synced++ });
  });
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  const groupsOf = (sock: ReturnType<Harness['sock']>) => {
    sock.groups = {
      [FAMILY]: {
        id: FAMILY,
        subject: 'Family',
        owner: undefined,
        participants: [],
        creation: 1_600_000_000,
      },
      '120363000000000002@g.us': {
        id: '120363000000000002@g.us',
        subject: 'Book club',
        owner: undefined,
        participants: [],
      },
    };
  };

  it('syncs on the first open, feeds the group list and chat names, then daily or when asked', async () => {
    vi.useFakeTimers({ toFake: ['setInterval'] });
    try {
      await h.channel.connect();
      groupsOf(h.sock());
      h.sock().open();
      await expect.poll(() => synced).toBe(1);
      expect(h.chat(FAMILY)).toMatchObject({ name: 'Family', isGroup: true });
      expect(h.chat('120363000000000002@g.us')).toMatchObject({ name: 'Book club' });

      h.sock().close(DisconnectReason.restartRequired); // a reconnect is no new sync
      await vi.waitFor(() => expect(h.sockets).toHaveLength(2));
      groupsOf(h.sock());
      h.sock().open();
      await h.channel.syncGroups();
      expect(h.sock().groupFetches).toBe(1);
      expect(synced).toBe(2);
      vi.advanceTimersByTime(24 * 60 * 60 * 1000);
      await expect.poll(() => synced).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does nothing when not connected', async () => {
    await h.channel.syncGroups();
    expect(synced).toBe(0);
  });
});
