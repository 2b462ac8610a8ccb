import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startHarness(): Promise<Harness> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-page-'));
  const h = { home, stored: [], replyAfter: () => sleep(200) } as unknown as Harness;
  const reply = async (chatJid: string, text: string) => {
    await h.channel.setTyping(chatJid, true);
    await h.replyAfter();
    const content = `echo: ${text}`;
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
    history: (chatJid, after) =>
      h.stored.filter((m) => m.chatJid === chatJid && (after === undefined || m.timestamp > after)),
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
    status: () => ({ usage: { main: { inputTokens: 1200, outputTokens: 340 } } }),
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

async function openPage(): Promise<void> {
  harness = await startHarness();
  context = await browser.newContext({ viewport: { width: 1000, height: 680 } });
  page = await context.newPage();
  pageProblems = [];
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageProblems.push(`console: ${msg.text()}`);
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

    const screenshot = process.env.CHAT_PAGE_SCREENSHOT;
    if (screenshot) await page.screenshot({ path: screenshot });
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
    expect(await page.locator('#status').textContent()).toContain('inputTokens');
    expect(pageProblems).toEqual([]);
  });
});
