import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import QRCode from 'qrcode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HostControl, TaskView, WhatsAppState } from '../../src/channels/control.js';
import type { HistoryMessage } from '../../src/channels/local/api.js';
import { LocalChannel } from '../../src/channels/local/local-channel.js';

/**
 * The chat page in a real headless Chromium against a real local channel. The harness plays the
 * host: it stores inbound and outbound messages in memory and echoes each message after a delay,
 * with the typing indicator on meanwhile.
 */
interface Harness {
  channel: LocalChannel;
  home: string;
  stored: Array<HistoryMessage & { chatJid: string }>;
  /** How long the "agent" works before replying; resolve it to release the reply. */
  replyAfter: () => Promise<void>;
  /** The assistant says something in local:main, stored first as the host does. */
  say(text: string): Promise<void>;
  /** What the page asked of the host, in order. */
  calls: unknown[][];
  tasks: TaskView[];
  wa: WhatsAppState;
  groups: Array<{ jid: string; name: string; registered: boolean }>;
  /** The WhatsApp state changed: tells the channel's listeners. */
  fire(): void;
  /** Set by a test to release a reply held by replyAfter. */
  release?: () => void;
}

/** A host that records what the page asks and changes its state the way the real one would. */
function fakeControl(h: Harness): HostControl {
  const listeners = new Set<() => void>();
  h.fire = () => listeners.forEach((l) => l());
  const task = (id: string) => h.tasks.find((t) => t.id === id);
  return {
    stopChat: async (jid) => {
      h.calls.push(['stopChat', jid]);
      h.release?.();
      return true;
    },
    tasks: (jid) => (jid === 'local:main' ? h.tasks : []),
    taskAction: (jid, id, action) => {
      h.calls.push(['taskAction', jid, id, action]);
      const t = task(id);
      if (!t) return { ok: false, error: `task '${id}' not found` };
      if (action === 'cancel') h.tasks = h.tasks.filter((x) => x !== t);
      else t.status = action === 'pause' ? 'paused' : 'active';
      return { ok: true };
    },
    typing: (jid) => void h.calls.push(['typing', jid, Date.now()]),
    whatsapp: {
      state: () => h.wa,
      link: async (opts) => {
        h.calls.push(['link', opts]);
        h.wa = opts.phone ? { status: 'linking', pairingCode: 'ABCD-1234' } : h.wa;
        h.fire();
      },
      unlink: async () => {
        h.calls.push(['unlink']);
        h.wa = { status: 'unlinked' };
        h.fire();
      },
      groups: () => h.groups,
      register: async (jid) => {
        h.calls.push(['register', jid]);
        const group = h.groups.find((g) => g.jid === jid);
        if (!group) return { ok: false, error: 'unknown group' };
        group.registered = true;
        return { ok: true, folder: 'family' };
      },
      onChange: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startHarness(): Promise<Harness> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-page-'));
  const h = {
    home,
    stored: [],
    replyAfter: () => sleep(200),
    calls: [],
    tasks: [],
    wa: { status: 'unlinked' },
    groups: [],
  } as unknown as Harness;
  const say = async (chatJid: string, content: string) => {
    // Like the host: the outbound message is stored before the channel is asked to send it.
    h.stored.push({
      chatJid,
      id: crypto.randomUUID(),
      sender: 'Andy',
      senderName: 'Andy',
      content,
      timestamp: new Date().toISOString(),
      isBotMessage: true,
    });
    await h.channel.sendMessage(chatJid, content);
  };
  h.say = (text) => say('local:main', text);
  const reply = async (chatJid: string, text: string) => {
    await h.channel.setTyping(chatJid, true);
    const stopped = await Promise.race([
      h.replyAfter().then(() => false),
      new Promise<boolean>((resolve) => (h.release = () => resolve(true))),
    ]);
    // Like the host: a stopped run ends with a short notice instead of the reply.
    await say(chatJid, stopped ? 'Stopped.' : `echo: ${text}`);
    await h.channel.setTyping(chatJid, false);
  };
  h.channel = new LocalChannel({
    port: 0,
    tokenFile: path.join(home, 'data', 'local-channel.token'),
    assistantName: 'Andy',
    callbacks: {
      onChatMetadata: () => undefined,
      onMessage: (m) => {
        if (m.content === 'explode') throw new Error('store is down');
        h.stored.push({ ...m });
        if (m.chatJid === 'local:main') void reply(m.chatJid, m.content);
      },
    },
    history: (chatJid, after = '', limit = 200, before = '~') =>
      h.stored
        .filter((m) => m.chatJid === chatJid && m.timestamp > after && m.timestamp < before)
        .slice(-limit),
    chats: () => [
      {
        jid: 'local:main',
        name: 'main',
        registered: true,
        isMain: true,
        lastMessageTime: new Date().toISOString(),
      },
    ],
    isRegistered: (jid) => jid === 'local:main',
    control: fakeControl(h),
    status: () => ({
      usageToday: [
        { groupFolder: 'main', day: '2024-05-01', inputTokens: 1200, outputTokens: 340, requests: 3 },
      ],
    }),
  });
  await h.channel.connect();
  return h;
}

let browser: Browser;
let harness: Harness;
let context: BrowserContext;
let page: Page;
let pageProblems: string[];

beforeAll(async () => {
  fs.mkdirSync(screenshots, { recursive: true });
  // No skip when Chromium is missing: launching fails and so does the suite.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
});

const screenshots = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const snap = (name: string) => page.screenshot({ path: path.join(screenshots, `${name}.png`) });
const DESKTOP = { width: 1000, height: 680 };
const PHONE = { width: 390, height: 844 };

async function openPage(
  viewport: { width: number; height: number } = DESKTOP,
  before?: (h: Harness) => void,
): Promise<void> {
  harness = await startHarness();
  before?.(harness);
  context = await browser.newContext({
    viewport,
    isMobile: viewport.width < 640,
    hasTouch: viewport.width < 640,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  page = await context.newPage();
  pageProblems = [];
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on('dialog', (dialog) => {
    pageProblems.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.text().includes('PWNED')) pageProblems.push(`console: ${msg.text()}`);
  });
  await page.goto(harness.channel.url());
  await page.locator('#conn.live').waitFor();
  await expectText('#chat-title', 'local:main');
}

afterEach(async () => {
  await context?.close();
  await harness?.channel.disconnect();
  if (harness) fs.rmSync(harness.home, { recursive: true, force: true });
});

async function expectText(selector: string, text: string): Promise<void> {
  await page.locator(selector, { hasText: text }).waitFor({ timeout: 10_000 });
}

describe('chat page', () => {
  it('sends with Enter and shows the reply that streams back', async () => {
    await openPage();
    // The token was swapped for a cookie and has left the address bar.
    expect(new URL(page.url()).search).toBe('');

    await page.locator('#text').fill('hello page');
    await page.locator('#text').press('Enter');
    await page
      .locator('#messages li.assistant .body', { hasText: 'echo: hello page' })
      .waitFor({ timeout: 10_000 });

    await expect(page.locator('#messages li.me .body').allTextContents()).resolves.toEqual(['hello page']);
    await expect(page.locator('#messages li.assistant .body').allTextContents()).resolves.toEqual([
      'echo: hello page',
    ]);
    expect(await page.locator('#text').inputValue()).toBe('');
    await page.locator('#typing').waitFor({ state: 'hidden' });
    expect(harness.stored.filter((m) => !m.isBotMessage).map((m) => m.content)).toEqual(['hello page']);

    // The log is appended to, never rebuilt, so a screen reader announces only what is new.
    expect(await page.locator('#messages').getAttribute('role')).toBe('log');
    await page.locator('#messages li.me').evaluate((li) => li.setAttribute('data-marked', 'kept'));
    await harness.say('and one more');
    await page.locator('#messages li.assistant .body', { hasText: 'and one more' }).waitFor();
    expect(await page.locator('#messages li[data-marked="kept"]').count()).toBe(1);
    await snap('desktop-chat');
    expect(pageProblems).toEqual([]);
  });

  it('shows that Andy is working while typing is on', async () => {
    await openPage();
    let release!: () => void;
    harness.replyAfter = () => new Promise<void>((resolve) => (release = resolve));

    await page.locator('#text').fill('take your time');
    await page.locator('#text').press('Enter');
    await page.locator('#typing').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#typing').textContent()).toContain('Andy is working');
    expect(await page.locator('#typing').getAttribute('role')).toBe('status');

    // A page opened mid-run learns that the assistant is working, too.
    const second = await context.newPage();
    await second.goto(`http://127.0.0.1:${harness.channel.port}/`);
    await second.locator('#typing').waitFor({ state: 'visible', timeout: 10_000 });
    await second.close();

    release();
    await page.locator('#messages li.assistant .body', { hasText: 'echo: take your time' }).waitFor();
    await page.locator('#typing').waitFor({ state: 'hidden' });
    expect(pageProblems).toEqual([]);
  });

  it('keeps the text and shows an error when a send fails', async () => {
    await openPage();
    await page.locator('#text').fill('explode');
    await page.locator('#text').press('Enter');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#error').textContent()).toMatch(/Message not sent: internal error/);
    expect(await page.locator('#text').inputValue()).toBe('explode');
    expect(await page.locator('#messages li.me').count()).toBe(0);
  });

  it('opens a new local chat, says it is not registered, and restores history on reload', async () => {
    await openPage();
    await page.locator('#text').fill('first');
    await page.locator('#text').press('Enter');
    await page
      .locator('#messages li.assistant .body', { hasText: 'echo: first' })
      .waitFor({ timeout: 10_000 });

    await page.locator('#new-chat-name').fill('notes');
    await page.locator('#new-chat-name').press('Enter');
    await expectText('#chat-title', 'local:notes');
    await expectText('#notice', 'not registered');
    await page.locator('#text').fill('a note to self');
    await page.locator('#text').press('Enter');
    await page.locator('#messages li.me .body', { hasText: 'a note to self' }).waitFor();
    expect(harness.stored.some((m) => m.chatJid === 'local:notes' && m.content === 'a note to self')).toBe(
      true,
    );

    // Back to main through the list, then a reload: the cookie alone is enough, history comes back.
    await page.locator('#chat-list button[data-jid="local:main"]').click();
    await expectText('#chat-title', 'local:main');
    await page.reload();
    await expectText('#chat-title', 'local:main');
    await page
      .locator('#messages li.assistant .body', { hasText: 'echo: first' })
      .waitFor({ timeout: 10_000 });
    await expect(page.locator('#messages li .body').allTextContents()).resolves.toEqual([
      'first',
      'echo: first',
    ]);
    expect(await page.locator('#status li').allTextContents()).toContain(
      'main: 1,200 tokens in, 340 out, 3 requests today',
    );
    expect(pageProblems).toEqual([]);
  });

  it('renders Markdown and WhatsApp emphasis in replies, with a copy button on code', async () => {
    await openPage();
    await harness.say(
      [
        '*bold* **also bold** _italic_ ~struck~ `inline`',
        '```\nconst x = 1;\n```',
        '| name | tokens |\n| --- | --- |\n| main | 12 |',
        '- one\n- two',
        '1. first',
        '> quoted',
        '[docs](https://example.com/docs) mail@example.com',
      ].join('\n\n'),
    );
    const reply = page.locator('#messages li.assistant .body').last();
    await reply.locator('table').waitFor({ timeout: 10_000 });
    expect(await reply.locator('strong').allTextContents()).toEqual(['bold', 'also bold']);
    expect(await reply.locator('em').allTextContents()).toEqual(['italic']);
    expect(await reply.locator('del').allTextContents()).toEqual(['struck']);
    expect(await reply.locator('p code').allTextContents()).toEqual(['inline']);
    expect(await reply.locator('td').allTextContents()).toEqual(['main', '12']);
    expect(await reply.locator('ul li').allTextContents()).toEqual(['one', 'two']);
    expect(await reply.locator('ol li').allTextContents()).toEqual(['first']);
    expect(await reply.locator('blockquote').textContent()).toContain('quoted');
    const link = reply.locator('a', { hasText: 'docs' });
    expect(await link.getAttribute('href')).toBe('https://example.com/docs');
    expect(await link.getAttribute('target')).toBe('_blank');
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
    const code = reply.locator('pre code');
    expect(await code.count()).toBe(1);
    const font = "getComputedStyle(document.querySelector('#messages li.assistant pre code')).fontFamily";
    expect(await page.evaluate(font)).toMatch(/monospace/);
    await reply.locator('pre button.copy').click();
    await reply.locator('pre button.copy', { hasText: 'Copied' }).waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe('const x = 1;\n');
    // The person's own text stays plain.
    await page.locator('#text').fill('*not bold*');
    await page.locator('#text').press('Enter');
    await page.locator('#messages li.assistant .body', { hasText: 'echo: not bold' }).waitFor();
    expect(await page.locator('#messages li.me .body').last().innerHTML()).toBe('*not bold*');
    await snap('desktop-markdown');
    expect(pageProblems).toEqual([]);
  });

  it('keeps hostile replies inert: no script runs, no handler or dangerous link survives', async () => {
    await openPage();
    const hostile = [
      '<script>console.log("PWNED script")</script>',
      '<img src=x onerror="console.log(\'PWNED img\')">',
      '<svg onload="console.log(\'PWNED svg\')"></svg>',
      '<iframe src="javascript:console.log(\'PWNED frame\')"></iframe>',
      '[click](javascript:console.log("PWNED link"))',
      '<a href="javascript:alert(1)">raw</a> [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
      '[img](x" onmouseover="console.log(\'PWNED attr\'))',
      '<b>unclosed <i>markup <div style="position:fixed;inset:0"',
      'last line',
    ].join('\n\n');
    await harness.say(hostile);
    const reply = page.locator('#messages li.assistant .body').last();
    await reply.getByText('last line').waitFor({ timeout: 10_000 });
    for (const link of await reply.locator('a').all()) await link.click({ force: true });
    await reply.hover();
    await page.waitForTimeout(300);
    const found = await page.locator('#messages').evaluate((root) => ({
      tags: [...root.querySelectorAll('script, img, svg, iframe, style, object, embed, form')].map(
        (e) => e.tagName,
      ),
      handlers: [...root.querySelectorAll('*')].flatMap((e) =>
        [...e.attributes]
          .filter((a) => /^on|^style$|^src$/i.test(a.name))
          .map((a) => `${e.tagName} ${a.name}`),
      ),
      hrefs: [...root.querySelectorAll('[href]')].map((e) => e.getAttribute('href')),
    }));
    expect(found).toEqual({ tags: [], handlers: [], hrefs: [] });
    // Shown as text, not run.
    expect(await reply.textContent()).toContain('<script>console.log("PWNED script")</script>');
    expect(pageProblems).toEqual([]);
    expect(new URL(page.url()).pathname).toBe('/');
  });

  it('loads the latest messages and pages back through the whole history', async () => {
    const start = Date.parse('2024-05-01T12:00:00Z');
    await openPage(DESKTOP, (h) => {
      for (let i = 0; i < 250; i++)
        h.stored.push({
          chatJid: 'local:main',
          id: `m${i}`,
          sender: i % 2 ? 'Andy' : 'local-user',
          senderName: i % 2 ? 'Andy' : 'You',
          content: `message ${i}`,
          timestamp: new Date(start + i * 1000).toISOString(),
          isBotMessage: i % 2 === 1,
        });
    });
    const items = page.locator('#messages li');
    await page.locator('#messages li', { hasText: 'message 249' }).waitFor({ timeout: 10_000 });
    expect(await items.count()).toBe(100);
    expect(await items.first().textContent()).toContain('message 150');
    const list = page.locator('#messages');
    expect(await list.getAttribute('aria-busy')).toBe('false');

    await page.locator('#earlier').click();
    await page.locator('#messages li', { hasText: 'message 51' }).waitFor();
    expect(await items.count()).toBe(199);
    // What was on screen stays there: the list did not jump to the new top.
    expect(await list.evaluate((l) => l.scrollTop)).toBeGreaterThan(0);
    await snap('desktop-history');

    await page.locator('#earlier').click();
    await page.locator('#earlier').waitFor({ state: 'hidden' });
    expect(await items.count()).toBe(250);
    const texts = await page.locator('#messages li .body').allTextContents();
    expect(texts).toEqual(Array.from({ length: 250 }, (_, i) => `message ${i}`));
    expect(pageProblems).toEqual([]);
  });

  it('fits a phone: no sideways scroll at 390 or 360 px, and the chat list is a drawer', async () => {
    await openPage(PHONE);
    await harness.say(`A long line: ${'x'.repeat(300)} https://example.com/${'y'.repeat(200)}`);
    await harness.say(
      '```\n' +
        'wide code '.repeat(40) +
        '\n```\n\n| a | b | c | d | e | f |\n|---|---|---|---|---|---|\n| 1 | 2 | 3 | 4 | 5 | 6 |',
    );
    await page.locator('#messages li.assistant table').waitFor({ timeout: 10_000 });
    // In the page: no sideways scroll, and the placeholder fits the box it is in.
    const fits = () =>
      page.evaluate(`(() => {
        const input = document.getElementById('text');
        const style = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = style.fontSize + ' ' + style.fontFamily;
        const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return {
          page: document.scrollingElement.scrollWidth <= innerWidth,
          placeholder: ctx.measureText(input.placeholder).width <= room,
        };
      })()`);
    expect(await fits()).toEqual({ page: true, placeholder: true });
    const drawer = page.locator('#drawer');
    await expect(drawer.isVisible()).resolves.toBe(false);
    await snap('phone-chat');

    await page.locator('#menu').click();
    await drawer.locator('button[data-jid="local:main"]').waitFor({ state: 'visible' });
    expect(await page.locator('#menu').getAttribute('aria-expanded')).toBe('true');
    expect(await fits()).toEqual({ page: true, placeholder: true });
    await snap('phone-drawer');
    await page.locator('#menu').click();
    await drawer.waitFor({ state: 'hidden' });
    expect(await page.locator('#menu').getAttribute('aria-expanded')).toBe('false');

    // Choosing a chat closes the drawer too.
    await page.locator('#menu').click();
    await drawer.locator('button[data-jid="local:main"]').click();
    await drawer.waitFor({ state: 'hidden' });

    await page.setViewportSize({ width: 360, height: 740 });
    expect(await fits()).toEqual({ page: true, placeholder: true });
    await snap('phone-360');
    expect(pageProblems).toEqual([]);
  });

  it('says to reopen the `nanoclaw open` link when the page is no longer signed in', async () => {
    await openPage();
    await context.clearCookies();
    await page.locator('#text').fill('hello?');
    await page.locator('#text').press('Enter');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#error').textContent()).toContain(
      'reopen the link that `nanoclaw open` prints',
    );
    expect(await page.locator('#text').inputValue()).toBe('hello?');
  });
});

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
    const weather = page.locator('article.task[data-id="task-1"]');
    await weather.waitFor({ timeout: 10_000 });
    expect(await weather.locator('.prompt').textContent()).toBe('Send the <b>weather</b> summary for Lisbon');
    expect(await weather.locator('.schedule').textContent()).toBe('every 1 h');
    expect(await weather.locator('.tag').textContent()).toBe('active');
    expect(await weather.locator('dd').nth(1).textContent()).toBe('Sunny, 21 °C');
    const runs = await weather.locator('.runs li').allTextContents();
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatch(/4\.2 s · success.*Sunny, 21 °C/);
    expect(runs[1]).toMatch(/1\.3 s · error.*weather service timed out/);
    const plants = page.locator('article.task[data-id="task-2"]');
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
    await expectText('#wa-note', 'folder family');
    await family.locator('.tag', { hasText: 'registered' }).waitFor();
    expect(callsOf('register')).toEqual([['register', '120363@g.us']]);
    await snap('desktop-whatsapp-linked');

    await page.getByRole('button', { name: 'Unlink' }).click();
    expect(callsOf('unlink')).toEqual([]);
    await page.getByRole('button', { name: /Really unlink/ }).click();
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
