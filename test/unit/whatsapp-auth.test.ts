import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { DisconnectReason } from '@whiskeysockets/baileys';
import qrcode from 'qrcode-terminal';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isWhatsAppLinked } from '../../src/channels/whatsapp/link-state.js';
import { runWhatsAppUnlink } from '../../src/cli/chat.js';
import { runWhatsAppAuth } from '../../src/cli/whatsapp-auth.js';
import { fakeSocketFactory, OWN_PN, writeLinkedCreds, type FakeSocket } from './whatsapp-fake-socket.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

function renderQr(qr: string): string {
  let rendered = '';
  qrcode.generate(qr, { small: true }, (text) => (rendered = text));
  return rendered;
}

/** What Baileys does when the phone accepts the link: creds gain the account, then a 515 restart. */
function acceptLink(sock: FakeSocket) {
  sock.opts.auth.creds.me = { id: '15550001111:9@s.whatsapp.net', name: 'Me' };
  sock.emit('creds.update', { me: sock.opts.auth.creds.me });
  sock.emit('connection.update', { isNewLogin: true, qr: undefined });
  sock.close(DisconnectReason.restartRequired);
}

describe('nanoclaw whatsapp-auth', () => {
  let authDir: string;
  let out: Capture;
  let fake: ReturnType<typeof fakeSocketFactory>;
  beforeEach(() => {
    authDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-wa-auth-')), 'auth');
    out = new Capture();
    fake = fakeSocketFactory();
  });
  afterEach(() => fs.rmSync(path.dirname(authDir), { recursive: true, force: true }));

  const socketNumber = async (n: number) => {
    await vi.waitFor(() => expect(fake.sockets.length).toBeGreaterThanOrEqual(n), { timeout: 3000 });
    return fake.sockets[n - 1] as FakeSocket;
  };

  it('shows the QR in the terminal, reconnects after the restart and resolves once linked', async () => {
    const done = runWhatsAppAuth(authDir, undefined, out, fake.makeSocket);
    const first = await socketNumber(1);
    const qr = '2@Qm9ndXNRUg==,c2lnbmVkSWRlbnRpdHk=,YWR2U2VjcmV0,bm9pc2VLZXk=';
    first.emit('connection.update', { qr });
    expect(out.text).toContain('Link a device, scan this QR code');
    expect(out.text).toContain(renderQr(qr));
    expect(renderQr(qr).split('\n').length).toBeGreaterThan(10);

    acceptLink(first);
    const second = await socketNumber(2);
    second.open({ id: '15550001111:9@s.whatsapp.net' });
    await expect(done).resolves.toEqual({ jid: OWN_PN });
    expect(isWhatsAppLinked(authDir)).toBe(true); // saved before it resolved
    expect(out.text).toContain(`Linked. Make it main: nanoclaw groups register --jid ${OWN_PN}`);
    expect(second.ended).toBe(true);
    expect(fake.sockets).toHaveLength(2);
  });

  it('with a phone number, asks once for a pairing code and prints it with instructions, no QR', async () => {
    const done = runWhatsAppAuth(authDir, '+1 555 000-1111', out, fake.makeSocket);
    const first = await socketNumber(1);
    first.pairingCode = 'K7PQ2XWZ';
    first.emit('connection.update', { qr: '2@ref1,a,b,c' });
    first.emit('connection.update', { qr: '2@ref2,a,b,c' });
    await vi.waitFor(() => expect(out.text).toMatch(/K7PQ-?2XWZ/));
    expect(first.pairingRequests).toEqual(['15550001111']);
    expect(out.text).toContain('Link with phone number instead');
    expect(out.text).not.toContain(renderQr('2@ref1,a,b,c'));

    acceptLink(first);
    (await socketNumber(2)).open({ id: '15550001111:9@s.whatsapp.net' });
    await expect(done).resolves.toEqual({ jid: OWN_PN });
  });

  it('refuses a pairing number that cannot be one, before connecting', async () => {
    await expect(runWhatsAppAuth(authDir, 'call me', out, fake.makeSocket)).rejects.toThrow(
      /full number with country code/,
    );
    expect(fake.sockets).toEqual([]);
  });

  it('fails with a clear message when the QR codes run out unscanned', async () => {
    const done = runWhatsAppAuth(authDir, undefined, out, fake.makeSocket);
    const first = await socketNumber(1);
    first.emit('connection.update', { qr: '2@ref,a,b,c' });
    first.close(DisconnectReason.timedOut);
    await expect(done).rejects.toThrow(/expired/);
    expect(isWhatsAppLinked(authDir)).toBe(false);
  });

  it('tells an unreachable WhatsApp (no QR code ever shown) from an expired QR code', async () => {
    const done = runWhatsAppAuth(authDir, undefined, out, fake.makeSocket);
    (await socketNumber(1)).close(DisconnectReason.timedOut); // no code yet: not "expired"
    await expect(done).rejects.toThrow(/^Cannot reach WhatsApp/);
    expect(out.text).not.toContain('QR');
  });

  it('reports an existing link without connecting, and how to link again', async () => {
    writeLinkedCreds(authDir);
    await expect(runWhatsAppAuth(authDir, undefined, out, fake.makeSocket)).resolves.toEqual({
      jid: OWN_PN,
    });
    expect(out.text).toContain(`WhatsApp is already linked as ${OWN_PN}`);
    expect(out.text).toContain('nanoclaw whatsapp-unlink');
    expect(fake.sockets).toEqual([]);
  });
});

describe('nanoclaw whatsapp-unlink with the assistant not running', () => {
  it('asks to start the assistant, which holds the link, and changes nothing', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-wa-unlink-'));
    try {
      writeLinkedCreds(path.join(home, 'store', 'auth'));
      await expect(runWhatsAppUnlink({ home, port: 1 }, new Capture())).rejects.toThrow(
        /No local chat token.*nanoclaw start/,
      );
      expect(isWhatsAppLinked(path.join(home, 'store', 'auth'))).toBe(true);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
