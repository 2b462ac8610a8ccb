import { DisconnectReason } from '@whiskeysockets/baileys';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isWhatsAppLinked } from '../../src/channels/whatsapp/link-state.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { fakeSocketFactory, OWN_PN } from '../unit/whatsapp-fake-socket.js';

const QR = '2@Xk3bq0Yx7jw1lS2Zr9sQ,Vf0u2pXyQ1c=,h6kq0C4mZ2s=,Yw2k9q1b0Q8=';

// Linking from the page, with the real host wiring: the self-chat becomes a main chat next to
// local:main and the channel starts without a restart; unlinking stops it.
describe('linking WhatsApp while the host runs', () => {
  let host: E2eHost | undefined;
  afterEach(async () => host?.stop());

  it('registers the self-chat as a second main chat and starts the channel at once', async () => {
    const fake = fakeSocketFactory();
    const runner = new FakeRuntime(() => ({ status: 'success', result: 'hi' }));
    host = await startE2eHost({ runtime: runner, app: { makeWhatsAppSocket: fake.makeSocket } });
    const { app } = host;
    expect(app.channels.map((c) => c.name)).toEqual(['local']);
    expect(app.control.whatsapp.state().status).toBe('unlinked');

    await app.control.whatsapp.link({});
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    await vi.waitFor(() => expect(app.control.whatsapp.state().qrSvg).toMatch(/^<svg/));

    // The phone accepts: Baileys saves the account and restarts the connection, which opens.
    const first = fake.sockets[0]!;
    first.opts.auth.creds.me = { id: '15550001111:9@s.whatsapp.net', name: 'Me' };
    first.emit('creds.update', { me: first.opts.auth.creds.me });
    first.close(DisconnectReason.restartRequired);
    fake.sockets[1]!.open({ id: '15550001111:9@s.whatsapp.net', lid: '88880001111:9@lid' });

    await vi.waitFor(() => expect(app.channels.map((c) => c.name)).toEqual(['local', 'whatsapp']));
    expect(app.control.whatsapp.state()).toMatchObject({ status: 'linked', selfJid: OWN_PN });
    expect(app.store.groups.byJid(OWN_PN)).toMatchObject({ isMain: true, requiresTrigger: false });
    expect(app.store.groups.byJid('local:main')?.isMain).toBe(true);
    expect(app.store.groups.main()?.jid).toBe('local:main');
    expect(isWhatsAppLinked(app.config.authDir)).toBe(true);

    const sockets = fake.sockets.length;
    const unlinked = app.control.whatsapp.unlink();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(sockets + 1)); // its own, for the logout
    fake.sockets[sockets]!.open();
    await unlinked;
    expect(fake.sockets[sockets]!.loggedOut).toBe(true);
    await vi.waitFor(() => expect(app.channels.map((c) => c.name)).toEqual(['local']));
    expect(app.control.whatsapp.state().status).toBe('unlinked');
    expect(isWhatsAppLinked(app.config.authDir)).toBe(false);
  });
});
