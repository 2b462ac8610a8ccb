import QRCode from 'qrcode';
import { describe, expect, it } from 'vitest';
import type { TaskView } from '../../src/channels/control.js';
import {
  harness,
  page,
  pageProblems,
  snap,
  DESKTOP,
  PHONE,
  openPage,
  expectText,
  type Harness,
  useChatPage,
} from '../helpers/chat-page-harness.js';

useChatPage();

const qrSvg = () =>
  QRCode.toString('2@nanoclaw-test-ref,c2VjcmV0LWtleQ==,aWRlbnRpdHk=,YWR2', { type: 'svg' });
const callsOf = (name: string) => harness.calls.filter((c) => c[0] === name);
const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
const weatherTask = (): TaskView => ({
  id: 'task-1',
  prompt: 'Send the <b>weather</b> summary for Lisbon',
  scheduleType: 'interval',
  scheduleValue: '3600000',
  status: 'active',
  nextRun: at(-30),
  lastResult: 'Sunny, 21 °C',
  runs: [
    { runAt: at(30), durationMs: 4200, status: 'success', result: 'Sunny, 21 °C' },
    { runAt: at(90), durationMs: 1300, status: 'error', result: 'weather service timed out' },
  ],
});
const linked = (h: Harness) => {
  h.wa = { status: 'linked', selfJid: '447700900123:5@s.whatsapp.net' };
  h.groups = [
    { jid: '120363@g.us', name: 'Family <3', registered: false },
    { jid: '120364@g.us', name: 'Book club', registered: true },
  ];
  h.fire();
};

describe('host controls on the chat page', () => {
  it('stops the agent while it works and shows the notice the host posts', async () => {
    await openPage();
    harness.replyAfter = () => new Promise<void>(() => undefined);
    await page.locator('#text').fill('a long job');
    await page.locator('#text').press('Enter');
    await page.locator('#stop').waitFor({ state: 'visible', timeout: 10_000 });
    await snap('desktop-working-stop');
    await page.locator('#stop').click();
    await page.locator('#messages li.assistant .body', { hasText: 'Stopped.' }).waitFor({ timeout: 10_000 });
    await page.locator('#stop').waitFor({ state: 'hidden' });
    await page.locator('#typing').waitFor({ state: 'hidden' });
    expect(callsOf('stopChat')).toEqual([['stopChat', 'local:main']]);
    expect(pageProblems).toEqual([]);
  });

  it("lists the chat's tasks with their runs, and pauses, resumes and cancels them", async () => {
    await openPage(DESKTOP, (h) => {
      h.tasks = [
        weatherTask(),
        {
          id: 'task-2',
          prompt: 'Remind me to water the plants',
          scheduleType: 'cron',
          scheduleValue: '0 9 * * 1',
          status: 'paused',
          nextRun: null,
          lastResult: null,
          runs: [],
        },
      ];
    });
    await page.locator('#tasks-tab').click();
    expect(await page.locator('#tasks-tab').getAttribute('aria-pressed')).toBe('true');
    await page.locator('#chat-view').waitFor({ state: 'hidden' });
    const weather = page.locator('#task-task-1');
    await weather.waitFor({ timeout: 10_000 });
    expect(await weather.locator('.prompt').textContent()).toBe('Send the <b>weather</b> summary for Lisbon');
    expect(await weather.locator('.schedule').textContent()).toBe('every 60 min');
    expect(await weather.locator('.tag').textContent()).toBe('active');
    expect(await weather.textContent()).toContain('Last result: Sunny, 21 °C');
    const runs = await weather.locator('.runs li').allTextContents();
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatch(/4\.2 s · success.*Sunny, 21 °C/);
    expect(runs[1]).toMatch(/1\.3 s · error.*weather service timed out/);
    const plants = page.locator('#task-task-2');
    expect(await plants.locator('.schedule').textContent()).toBe('cron 0 9 * * 1');
    expect(await plants.locator('h3').textContent()).toBe('No runs yet');
    await snap('desktop-tasks');

    await weather.getByRole('button', { name: 'Pause' }).click();
    await weather.locator('.tag', { hasText: 'paused' }).waitFor();
    await weather.getByRole('button', { name: 'Resume' }).click();
    await weather.locator('.tag', { hasText: 'active' }).waitFor();
    // Cancelling cannot be undone: the first click only asks.
    await plants.getByRole('button', { name: 'Cancel' }).click();
    await plants.getByRole('button', { name: 'Really cancel?' }).click();
    await plants.waitFor({ state: 'detached' });
    expect(callsOf('taskAction')).toEqual([
      ['taskAction', 'local:main', 'task-1', 'pause'],
      ['taskAction', 'local:main', 'task-1', 'resume'],
      ['taskAction', 'local:main', 'task-2', 'cancel'],
    ]);

    // Another chat has its own (no) tasks; the tab takes the person back to the chat.
    await page.locator('#new-chat-name').fill('notes');
    await page.locator('#new-chat-name').press('Enter');
    await expectText('#task-list', 'No scheduled tasks');
    await page.locator('#tasks-tab').click();
    await page.locator('#tasks-view').waitFor({ state: 'hidden' });
    await page.locator('#messages').waitFor();
    expect(pageProblems).toEqual([]);
  });

  it('tells the host the person is typing, at most once per 3 s per chat', async () => {
    await openPage();
    const typing = () => callsOf('typing');
    await page.locator('#text').pressSequentially('hello there', { delay: 100 });
    await expect.poll(typing).toHaveLength(1);
    await page.waitForTimeout(2200);
    await page.locator('#text').pressSequentially(' again', { delay: 50 });
    await expect.poll(typing).toHaveLength(2);
    await page.locator('#text').pressSequentially('!!', { delay: 50 });
    await page.waitForTimeout(300);
    expect(typing()).toHaveLength(2);
    expect((typing()[1]![2] as number) - (typing()[0]![2] as number)).toBeGreaterThan(2900);
    await page.locator('#new-chat-name').fill('notes');
    await page.locator('#new-chat-name').press('Enter');
    await expectText('#chat-title', 'local:notes');
    await page.locator('#text').pressSequentially('x');
    await expect.poll(typing).toHaveLength(3);
    expect(typing().map((c) => c[1])).toEqual(['local:main', 'local:main', 'local:notes']);
    expect(pageProblems).toEqual([]);
  });

  it('links WhatsApp by QR code, shows the link without a reload, registers a group and unlinks', async () => {
    const svg = await qrSvg();
    await openPage(DESKTOP, (h) => (h.wa = { status: 'linking', qrSvg: svg }));
    await page.locator('#wa-open', { hasText: 'linking' }).click();
    const qr = page.locator('#wa-code img.qr');
    await qr.waitFor({ timeout: 10_000 });
    // Decoded and drawn: the CSP let the data: image in.
    const width = () => qr.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth);
    await expect.poll(width).toBeGreaterThan(0);
    expect(await page.locator('#wa-view svg, #wa-view script').count()).toBe(0);
    await snap('desktop-whatsapp-qr');

    linked(harness);
    await expectText('#wa-status', 'Linked as +447700900123');
    await qr.waitFor({ state: 'detached' });
    await expectText('#wa-open', 'WhatsApp: linked');
    const family = page.locator('#wa-groups li', { hasText: 'Family <3' });
    expect(await page.locator('#wa-groups li', { hasText: 'Book club' }).locator('.tag').textContent()).toBe(
      'registered',
    );
    await family.getByRole('button', { name: 'Register' }).click();
    await family.locator('.tag', { hasText: 'registered' }).waitFor();
    expect(callsOf('register')).toEqual([['register', '120363@g.us']]);
    await snap('desktop-whatsapp-linked');

    await page.getByRole('button', { name: 'Unlink' }).click();
    expect(callsOf('unlink')).toEqual([]);
    await page.getByRole('button', { name: 'Really unlink?' }).click();
    await page.locator('#wa-link').waitFor();
    await expectText('#wa-status', 'not linked');
    expect(callsOf('unlink')).toEqual([['unlink']]);
    expect(pageProblems).toEqual([]);
  });

  it('shows why linking failed and links by pairing code for a phone number', async () => {
    const error = 'Linking timed out: the QR code was not scanned within 2 minutes.';
    await openPage(DESKTOP, (h) => (h.wa = { status: 'unlinked', error }));
    await page.locator('#wa-open').click();
    await expectText('#wa-error', error);
    await snap('desktop-whatsapp-error');
    await page.locator('#wa-phone').fill('+44 7700 900123');
    await page.getByRole('button', { name: 'Link WhatsApp' }).click();
    await expectText('#wa-code .pairing', 'ABCD-1234');
    await page.locator('#wa-error').waitFor({ state: 'hidden' });
    expect(callsOf('link')).toEqual([['link', { phone: '447700900123' }]]);
    await snap('desktop-whatsapp-pairing');
    await page.locator('#wa-close').click();
    await page.locator('#messages').waitFor();
    expect(pageProblems).toEqual([]);
  });

  it('fits a phone: the WhatsApp and Tasks views have no sideways scroll at 390 px', async () => {
    const svg = await qrSvg();
    await openPage(PHONE, (h) => {
      h.wa = { status: 'linking', qrSvg: svg };
      h.tasks = [
        {
          ...weatherTask(),
          prompt: `Check ${'https://example.com/a-very-long-path/'.repeat(6)} every hour`,
          scheduleType: 'cron',
          scheduleValue: '*/15 8-18 * * 1-5',
          runs: [{ runAt: at(5), durationMs: 61_000, status: 'error', result: 'E'.repeat(300) }],
        },
      ];
    });
    const fits = () =>
      page.evaluate(
        `document.scrollingElement.scrollWidth <= innerWidth &&
         [...document.querySelectorAll('.panel')].every((p) => p.scrollWidth <= p.clientWidth)`,
      );
    await page.locator('#menu').click();
    await page.locator('#wa-open').click();
    await page.locator('#wa-code img.qr').waitFor({ timeout: 10_000 });
    await page.locator('#drawer').waitFor({ state: 'hidden' });
    expect(await fits()).toBe(true);
    await snap('phone-whatsapp-qr');
    linked(harness);
    await expectText('#wa-status', 'Linked as');
    expect(await fits()).toBe(true);
    await snap('phone-whatsapp-linked');

    await page.locator('#tasks-tab').click();
    await page.locator('article.task .runs li').waitFor();
    expect(await fits()).toBe(true);
    await snap('phone-tasks');

    await page.locator('#tasks-tab').click();
    harness.replyAfter = () => new Promise<void>(() => undefined);
    await page.locator('#text').fill('work');
    await page.locator('#text').press('Enter');
    await page.locator('#stop').waitFor({ timeout: 10_000 });
    expect(await fits()).toBe(true);
    await snap('phone-working-stop');
    expect(pageProblems).toEqual([]);
  });
});
