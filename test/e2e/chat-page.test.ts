import { describe, expect, it } from 'vitest';
import {
  harness,
  context,
  page,
  pageProblems,
  snap,
  DESKTOP,
  PHONE,
  openPage,
  expectText,
  useChatPage,
} from '../helpers/chat-page-harness.js';

useChatPage();

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
    expect(await page.locator('#usage li').allTextContents()).toContain(
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
