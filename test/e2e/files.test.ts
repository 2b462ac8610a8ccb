import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasToolResult, isAgentTurn, lastUserText, type MockScript } from '../fixtures/mock-anthropic.js';
import { launchChromium } from '../helpers/chat-page-harness.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/** A 1x1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

/** An uploaded image makes the agent look at it with Bash; everything else as in the scenario script. */
const script: MockScript = (req) => {
  const text = lastUserText(req.body);
  const image = /\[image: (\/workspace\/inbox\/media\/[A-Za-z0-9._-]+)\]/.exec(text);
  if (isAgentTurn(req.body) && !hasToolResult(req.body) && image)
    return {
      toolUse: { name: 'Bash', input: { command: `wc -c < ${image[1]}; od -An -tx1 -N4 ${image[1]}` } },
    };
  return scenarioScript(req);
};

/**
 * Files both ways through the real host, a real bwrap sandbox and real Chromium: an image uploaded
 * on the page is read by the agent in its workspace; files the agent sends show on the page.
 */
describe('files between the page and the agent (bwrap)', () => {
  let host: E2eHost;
  let browser: Browser;
  let page: Page;
  const chat = 'local:pics';

  beforeAll(async () => {
    host = await startE2eHost({ runtime: 'bwrap', script, groups: ['pics'], env: { IDLE_TIMEOUT: '60000' } });
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (err) => console.error('page error', err));
    await page.goto(host.local.url());
    // The page opens main first; then the person picks the chat from the list.
    await page.locator('#chat-title', { hasText: 'local:main' }).waitFor();
    await page.locator(`#chat-list button[data-jid="${chat}"]`).click();
    await page.locator('#chat-title', { hasText: chat }).waitFor();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await host?.stop();
  });

  const say = async (text: string) => {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
  };

  it('an image uploaded on the page reaches the agent, which reads it from its workspace', async () => {
    await page.setInputFiles('#file', { name: 'my photo.png', mimeType: 'image/png', buffer: PNG });
    // The person's message shows the image at once.
    const mine = page.locator('#messages li.me img.attachment');
    await expect
      .poll(() => mine.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth), {
        timeout: 10_000,
      })
      .toBe(1);
    const reply = await host.reply(chat, (t) => t.startsWith('RESULT:'));
    expect(reply).toContain(String(PNG.length));
    expect(reply).toContain('89 50 4e 47');
    const read = JSON.stringify(host.mock.requests.at(-1)?.body);
    expect(read).toContain('/workspace/inbox/media/my_photo.png');
  }, 120_000);

  it('files the agent sends show on the page: an image inline, a document as a download', async () => {
    const ask = async (text: string) => {
      const before = host.assistantTexts(chat).length;
      await say(text);
      const results = () =>
        host
          .assistantTexts(chat)
          .slice(before)
          .filter((t) => t.startsWith('RESULT:'));
      await expect.poll(() => results().length, { timeout: 90_000 }).toBe(1);
      return results()[0];
    };
    const b64 = PNG.toString('base64');
    await ask(
      `RUN: echo ${b64} | base64 -d > /workspace/group/chart.png && printf 'a,b\\n1,2\\n' > /workspace/group/data.csv`,
    );
    expect(
      await ask('TOOL: mcp__nanoclaw__send_file {"path":"/workspace/group/chart.png","caption":"the chart"}'),
    ).toBe('RESULT: File sent.');
    expect(await ask('TOOL: mcp__nanoclaw__send_file {"path":"data.csv"}')).toBe('RESULT: File sent.');
    await host.waitFor(chat, (t) => /^\[file: pics\/\d+-[0-9a-f]{8}-data\.csv\]$/.test(t));
    expect(host.assistantTexts(chat)).toContainEqual(
      expect.stringMatching(/^the chart\n\[file: pics\/.+-chart\.png\]$/),
    );
    const img = page.locator('#messages li.assistant img.attachment');
    await expect
      .poll(() => img.evaluate((i) => (i as unknown as { naturalWidth: number }).naturalWidth), {
        timeout: 15_000,
      })
      .toBe(1);
    const link = page.locator('#messages li.assistant a.attachment-file');
    await expect.poll(() => link.count(), { timeout: 15_000 }).toBe(1);
    expect(await link.textContent()).toContain('data.csv');
    const fetched = await link.evaluate(async (a) => {
      const res = await fetch(a.getAttribute('href')!);
      return { text: await res.text(), disposition: res.headers.get('content-disposition') };
    });
    expect(fetched.text).toBe('a,b\n1,2\n');
    expect(fetched.disposition).toMatch(/^attachment;/);
    await page.screenshot({ path: 'test-artifacts/screenshots/files.png' });
  }, 180_000);
});
