import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { type Browser } from 'playwright-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isWhatsAppLinked } from '../../src/channels/whatsapp/link-state.js';
import { launchChromium } from '../helpers/chat-page-harness.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { fakeSocketFactory, OWN_PN } from '../unit/whatsapp-fake-socket.js';

const QR = '2@Xk3bq0Yx7jw1lS2Zr9sQ,Vf0u2pXyQ1c=,h6kq0C4mZ2s=,Yw2k9q1b0Q8=';
const screenshots = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

// Linking from the page in real Chromium, with the real host wiring and a fake Baileys socket: the
// QR code the socket offers shows on the page; once the phone accepts, the self-chat becomes a main
// chat next to local:main and the channel starts without a restart; unlinking stops it.
describe('linking WhatsApp from the chat page while the host runs', () => {
  let host: E2eHost | undefined;
  let browser: Browser | undefined;
  afterEach(async () => {
    await browser?.close();
    await host?.stop();
  });

  it('shows the QR code, registers the self-chat as a second main chat and starts the channel', async () => {
    const fake = fakeSocketFactory();
    const runner = new FakeRuntime(() => ({ status: 'success', result: 'hi' }));
    host = await startE2eHost({ runtime: runner, app: { makeWhatsAppSocket: fake.makeSocket } });
    const { app } = host;
    expect(app.channels.map((c) => c.name)).toEqual(['local']);

    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(host.local.url());
    await page.locator('#wa-open', { hasText: 'not linked' }).click();
    await page.getByRole('button', { name: 'Link WhatsApp' }).click();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.sockets[0]!.emit('connection.update', { qr: QR });
    const qr = page.locator('#wa-code img.qr');
    await qr.waitFor({ timeout: 15_000 });
    await expect
      .poll(() => qr.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth))
      .toBeGreaterThan(0);
    await page.screenshot({ path: path.join(screenshots, 'whatsapp-link-real-host.png') });

    // The phone accepts: Baileys saves the account and restarts the connection, which opens.
    const first = fake.sockets[0]!;
    first.opts.auth.creds.me = { id: '15550001111:9@s.whatsapp.net', name: 'Me' };
    first.emit('creds.update', { me: first.opts.auth.creds.me });
    first.close(DisconnectReason.restartRequired);
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2));
    fake.sockets[1]!.open({ id: '15550001111:9@s.whatsapp.net', lid: '88880001111:9@lid' });

    await page.locator('#wa-status', { hasText: 'Linked as +15550001111' }).waitFor({ timeout: 15_000 });
    await qr.waitFor({ state: 'detached' });
    await vi.waitFor(() => expect(app.channels.map((c) => c.name)).toEqual(['local', 'whatsapp']));
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
    await page.locator('#wa-status', { hasText: 'not linked' }).waitFor();
    expect(isWhatsAppLinked(app.config.authDir)).toBe(false);
  }, 90_000);
});
