import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isValidFolder } from '../../src/contract/ipc.js';
import { isWhatsAppLinked } from '../../src/channels/whatsapp/link-state.js';
import { folderFor, WhatsAppLink, type WhatsAppLinkDeps } from '../../src/channels/whatsapp/linker.js';
import { fakeSocketFactory, OWN_PN, writeLinkedCreds, type FakeSocket } from './whatsapp-fake-socket.js';

const QR = '2@Xk3bq0Yx7jw1lS2Zr9sQ,Vf0u2pXyQ1c=,h6kq0C4mZ2s=,Yw2k9q1b0Q8=';

/** What Baileys does when the phone accepts the link: creds gain the account, then a 515 restart. */
function acceptLink(sock: FakeSocket) {
  sock.opts.auth.creds.me = { id: '15550001111:9@s.whatsapp.net', name: 'Me' };
  sock.emit('creds.update', { me: sock.opts.auth.creds.me });
  sock.close(DisconnectReason.restartRequired);
}

describe('WhatsApp runtime linking', () => {
  let authDir: string;
  let fake: ReturnType<typeof fakeSocketFactory>;
  let calls: string[];
  let registered: Set<string>;
  let link: WhatsAppLink;
  let changes: number;

  function makeLink(extra: Partial<WhatsAppLinkDeps> = {}) {
    link = new WhatsAppLink({
      authDir,
      makeSocket: fake.makeSocket,
      onLinked: async (jid) => void calls.push(`linked ${jid}`),
      onUnlinked: async () => void calls.push(`unlinked (sockets: ${fake.sockets.length})`),
      knownGroups: () => [],
      isRegistered: (jid) => registered.has(jid),
      folderTaken: () => false,
      registerGroup: async (jid, _name, folder) => (registered.add(jid), { ok: true, folder }),
      ...extra,
    });
    changes = 0;
    link.onChange(() => changes++);
    return link;
  }

  beforeEach(() => {
    authDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-wa-link-')), 'auth');
    fake = fakeSocketFactory();
    calls = [];
    registered = new Set();
  });
  afterEach(() => fs.rmSync(path.dirname(authDir), { recursive: true, force: true }));

  it('starts linked with the own jid when credentials exist, else unlinked', () => {
    expect(makeLink().state()).toEqual({ status: 'unlinked' });
    writeLinkedCreds(authDir);
    expect(makeLink().state()).toEqual({ status: 'linked', selfJid: OWN_PN });
  });

  it('shows each QR code as an SVG document while linking', async () => {
    makeLink();
    await link.link({});
    expect(link.state()).toEqual({ status: 'linking' });
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    await vi.waitFor(() =>
      expect(link.state().qrSvg).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/),
    );
    expect(link.state().status).toBe('linking');
    expect(changes).toBeGreaterThanOrEqual(2);
  });

  it('links: saves the credentials, closes its own socket and hands the normalised own jid to onLinked', async () => {
    makeLink();
    await link.link({});
    const first = fake.sockets[0]!;
    first.emit('connection.update', { qr: QR });
    acceptLink(first);
    expect(fake.sockets).toHaveLength(2);
    const second = fake.sockets[1]!;
    expect(second.opts.auth.creds.me?.id).toBe('15550001111:9@s.whatsapp.net');
    second.open({ id: '15550001111:9@s.whatsapp.net', lid: '88880001111:9@lid' });
    await vi.waitFor(() => expect(calls).toEqual([`linked ${OWN_PN}`]));
    expect(link.state()).toEqual({ status: 'linked', selfJid: OWN_PN });
    expect(isWhatsAppLinked(authDir)).toBe(true);
    expect(second.ended).toBe(true);
  });

  it('asks for a pairing code when a phone number is given', async () => {
    makeLink();
    await link.link({ phone: '+49 151 1234-5678' });
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    fake.sockets[0]!.emit('connection.update', { qr: `${QR}x` });
    await vi.waitFor(() => expect(link.state()).toEqual({ status: 'linking', pairingCode: 'ABCD1234' }));
    expect(fake.sockets[0]!.pairingRequests).toEqual(['4915112345678']);
  });

  it('refuses a phone number that is not a full international number', async () => {
    makeLink();
    await link.link({ phone: '0151' });
    expect(link.state()).toMatchObject({ status: 'unlinked', error: expect.stringMatching(/country code/) });
    expect(fake.sockets).toEqual([]);
  });

  it('says it cannot reach WhatsApp when the connection closes before any QR code', async () => {
    makeLink();
    await link.link({});
    fake.sockets[0]!.close(DisconnectReason.connectionClosed);
    await vi.waitFor(() => expect(link.state().status).toBe('cannot-reach'));
    expect(link.state().error).toBe('Cannot reach WhatsApp: Connection Closed');
    expect(fake.sockets[0]!.ended).toBe(true);
  });

  it('says the QR code expired when the codes ran out', async () => {
    makeLink();
    await link.link({});
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    fake.sockets[0]!.close(DisconnectReason.timedOut);
    await vi.waitFor(() =>
      expect(link.state()).toEqual({ status: 'unlinked', error: 'The code expired; try again' }),
    );
    expect(isWhatsAppLinked(authDir)).toBe(false);
  });

  it('says why when WhatsApp refuses the link, and keeps nothing of it', async () => {
    makeLink();
    await link.link({});
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    fake.sockets[0]!.close(DisconnectReason.loggedOut);
    await vi.waitFor(() => expect(link.state().status).toBe('cannot-reach'));
    expect(link.state().error).toMatch(/Cannot reach WhatsApp/);
    expect(isWhatsAppLinked(authDir)).toBe(false);
  });

  it('unlinks: stops the channel, logs the device out, deletes the credentials', async () => {
    writeLinkedCreds(authDir);
    makeLink();
    const done = link.unlink();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.sockets[0]!.open();
    await done;
    expect(calls).toEqual(['unlinked (sockets: 0)']);
    expect(fake.sockets[0]!.loggedOut).toBe(true);
    expect(fs.existsSync(authDir)).toBe(false);
    expect(link.state()).toEqual({ status: 'unlinked' });
  });

  it('unlinks even when WhatsApp cannot be reached for the logout', async () => {
    writeLinkedCreds(authDir);
    makeLink();
    const done = link.unlink();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.sockets[0]!.close(DisconnectReason.connectionClosed);
    await done;
    expect(fake.sockets[0]!.loggedOut).toBe(false);
    expect(isWhatsAppLinked(authDir)).toBe(false);
    expect(link.state().status).toBe('unlinked');
  });

  it('forgets a link the channel found logged out', async () => {
    writeLinkedCreds(authDir);
    makeLink();
    await link.loggedOut();
    expect(calls).toEqual(['unlinked (sockets: 0)']);
    expect(isWhatsAppLinked(authDir)).toBe(false);
    expect(link.state()).toMatchObject({ status: 'logged-out' });
  });

  it('lists known groups and registers one under a safe, unique folder', async () => {
    const groups = [
      { jid: '120363000000000001@g.us', name: 'Family & Friends!' },
      { jid: '120363000000000002@g.us', name: '🎉🎉' },
      { jid: '120363000000000003@g.us', name: 'Registered' },
    ];
    registered.add('120363000000000003@g.us');
    const taken = new Set(['family-friends', 'family-friends-2']);
    makeLink({ knownGroups: () => groups, folderTaken: (f) => taken.has(f) });
    expect(link.groups().map((g) => g.registered)).toEqual([false, false, true]);
    expect(await link.register(groups[0]!.jid)).toEqual({ ok: true, folder: 'family-friends-3' });
    expect(await link.register(groups[1]!.jid)).toEqual({ ok: true, folder: 'wa-group' });
    expect(await link.register(groups[2]!.jid)).toMatchObject({ ok: false });
    expect(await link.register('120363000000000099@g.us')).toMatchObject({ ok: false });
    expect(link.groups().every((g) => g.registered)).toBe(true);
  });

  it('derives folders of lower-case ascii letters, digits and dashes, at most 40 long', () => {
    const none = () => false;
    expect(folderFor('Ünïcode Café ☕', none)).toBe('unicode-cafe');
    expect(folderFor('../../etc/passwd', none)).toBe('etc-passwd');
    expect(folderFor('---', none)).toBe('wa-group');
    expect(folderFor('global', none)).toBe('global-2');
    const long = folderFor('a'.repeat(39) + ' b c', none)!;
    expect(long).toBe('a'.repeat(39));
    const taken = new Set(['x'.repeat(40)]);
    expect(folderFor('x'.repeat(50), (f) => taken.has(f))).toBe(`${'x'.repeat(38)}-2`);
    for (const f of ['unicode-cafe', long, 'wa-group', 'global-2']) expect(isValidFolder(f)).toBe(true);
  });
});
