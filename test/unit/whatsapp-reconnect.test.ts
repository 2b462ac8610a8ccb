import fs from 'node:fs';
import path from 'node:path';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isWhatsAppLinked, linkedAccountJid } from '../../src/channels/whatsapp/link-state.js';
import { logger } from '../../src/logger.js';
import { channelHarness, type Harness } from './whatsapp-fake-socket.js';

/** Every message the channel logged at warn or error, in order. */
function logLines() {
  const lines: string[] = [];
  const capture =
    (level: string) =>
    (...args: unknown[]) => {
      const msg = args.find((a) => typeof a === 'string');
      lines.push(`${level}: ${String(msg)}`);
    };
  vi.spyOn(logger, 'warn').mockImplementation(capture('warn'));
  vi.spyOn(logger, 'error').mockImplementation(capture('error'));
  return lines;
}

describe('WhatsApp channel: linking state', () => {
  afterEach(() => vi.restoreAllMocks());

  it('without a link, says how to link in one line and starts nothing', async () => {
    const lines = logLines();
    const h = channelHarness({ linked: false });
    try {
      await expect(h.channel.connect()).resolves.toBeUndefined();
      expect(h.sockets).toEqual([]);
      expect(h.channel.isConnected()).toBe(false);
      expect(lines).toEqual(['warn: WhatsApp is not linked; run `nanoclaw whatsapp-auth` to link it']);
      // Not connected: the outbox keeps the message and retries.
      await expect(h.channel.sendMessage('120363000000000001@g.us', 'kept')).rejects.toMatchObject({
        kind: 'transient',
      });
      await h.channel.disconnect();
    } finally {
      h.cleanup();
    }
  });

  it('counts only credentials of a completed link as linked', () => {
    const h = channelHarness({ linked: false });
    try {
      expect(isWhatsAppLinked(h.authDir)).toBe(false);
      expect(linkedAccountJid(h.authDir)).toBeUndefined();
      fs.mkdirSync(h.authDir, { recursive: true });
      fs.writeFileSync(path.join(h.authDir, 'creds.json'), JSON.stringify({ registered: false, me: null }));
      expect(isWhatsAppLinked(h.authDir)).toBe(false);
      fs.writeFileSync(path.join(h.authDir, 'creds.json'), '{broken');
      expect(isWhatsAppLinked(h.authDir)).toBe(false);
      fs.writeFileSync(
        path.join(h.authDir, 'creds.json'),
        JSON.stringify({ me: { id: '1555:1@s.whatsapp.net' } }),
      );
      expect(isWhatsAppLinked(h.authDir)).toBe(true);
      expect(linkedAccountJid(h.authDir)).toBe('1555@s.whatsapp.net');
    } finally {
      h.cleanup();
    }
  });

  it('connects with the stored credentials and saves them when Baileys updates them', async () => {
    const h = channelHarness();
    try {
      await h.channel.connect();
      expect(h.sockets).toHaveLength(1);
      const sock = h.sock();
      expect(sock.opts.auth.creds.me?.id).toBe('15550001111:7@s.whatsapp.net');
      expect(sock.opts.logger.level).toBe('warn');
      sock.opts.auth.creds.me = { id: '15550001111:7@s.whatsapp.net', name: 'Renamed' };
      sock.emit('creds.update', { me: sock.opts.auth.creds.me });
      await vi.waitFor(() => {
        const saved = JSON.parse(fs.readFileSync(path.join(h.authDir, 'creds.json'), 'utf8')) as {
          me: { name: string };
        };
        expect(saved.me.name).toBe('Renamed');
      });
    } finally {
      await h.channel.disconnect();
      h.cleanup();
    }
  });
});

describe('WhatsApp channel: reconnecting', () => {
  let h: Harness;
  let lines: string[];
  beforeEach(async () => {
    vi.useFakeTimers();
    lines = logLines();
    h = channelHarness();
    await h.channel.connect();
  });
  afterEach(async () => {
    await h.channel.disconnect();
    vi.useRealTimers();
    vi.restoreAllMocks();
    h.cleanup();
  });

  /** Time from a close until the next socket is made, in ms (fails past 2 minutes). */
  async function delayUntilNextSocket(): Promise<number> {
    const before = h.sockets.length;
    await vi.advanceTimersByTimeAsync(0);
    for (let waited = 0; waited <= 120_000; waited += 250) {
      if (h.sockets.length > before) return waited;
      await vi.advanceTimersByTimeAsync(250);
    }
    throw new Error('no reconnect');
  }

  it('backs off 1 s doubling to 60 s on lost connections, and starts over after a successful open', async () => {
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.sock().close(DisconnectReason.connectionLost);
      delays.push(await delayUntilNextSocket());
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);

    h.sock().open();
    expect(h.channel.isConnected()).toBe(true);
    h.sock().close(DisconnectReason.connectionClosed);
    expect(h.channel.isConnected()).toBe(false);
    expect(await delayUntilNextSocket()).toBe(1000);
  });

  it.each([
    ['connectionClosed', DisconnectReason.connectionClosed],
    ['timedOut', DisconnectReason.timedOut],
    ['badSession', DisconnectReason.badSession],
    ['unavailableService', DisconnectReason.unavailableService],
    ['no status', undefined],
  ])('reconnects with backoff after %s', async (_name, code) => {
    h.sock().close(code);
    expect(await delayUntilNextSocket()).toBe(1000);
  });

  it('reconnects at once when WhatsApp asks for a restart', async () => {
    h.sock().close(DisconnectReason.restartRequired);
    expect(await delayUntilNextSocket()).toBe(0);
  });

  it('on logged out: one clear log line, the socket is let go, no reconnect loop', async () => {
    const sock = h.sock();
    sock.open();
    lines.length = 0;
    sock.close(DisconnectReason.loggedOut);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(h.sockets).toHaveLength(1);
    expect(lines).toEqual(['error: WhatsApp logged out (401); run `nanoclaw whatsapp-auth` to link it']);
    expect(h.channel.isConnected()).toBe(false);
    expect(sock.ended).toBe(true);
  });

  it.each([
    ['connectionReplaced', DisconnectReason.connectionReplaced],
    ['forbidden', DisconnectReason.forbidden],
    ['multideviceMismatch', DisconnectReason.multideviceMismatch],
  ])('does not reconnect after %s', async (_name, code) => {
    h.sock().close(code);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(h.sockets).toHaveLength(1);
    expect(lines).toHaveLength(1);
  });

  it('stops with one line when the stored link is no longer valid (a QR is offered)', async () => {
    const sock = h.sock();
    sock.emit('connection.update', { qr: '2@abc,def,ghi,jkl' });
    sock.emit('connection.update', { qr: '2@abc,def,ghi,mno' });
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(lines).toEqual([
      'error: WhatsApp needs to be linked again; run `nanoclaw whatsapp-auth` to link it',
    ]);
    expect(sock.ended).toBe(true);
    expect(h.sockets).toHaveLength(1);
  });

  it('disconnect() clears a pending reconnect', async () => {
    // Baileys' signal-key cache keeps an unref'd sweep interval of its own; count ours on top of it.
    const baseline = vi.getTimerCount();
    h.sock().close(DisconnectReason.connectionLost);
    expect(vi.getTimerCount()).toBe(baseline + 1);
    await h.channel.disconnect();
    expect(vi.getTimerCount()).toBe(baseline);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.sockets).toHaveLength(1);
  });

  it('ignores events from a socket it has already replaced', async () => {
    const first = h.sock();
    first.close(DisconnectReason.connectionLost);
    await delayUntilNextSocket();
    first.open();
    expect(h.channel.isConnected()).toBe(false);
    first.close(DisconnectReason.connectionLost);
    h.sock().open();
    expect(h.channel.isConnected()).toBe(true);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.sockets).toHaveLength(2);
  });
});
