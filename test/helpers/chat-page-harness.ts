import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { HostControl, TaskView, WhatsAppState } from '../../src/channels/control.js';
import type { HistoryMessage } from '../../src/channels/local/api.js';
import { LocalChannel } from '../../src/channels/local/local-channel.js';

/**
 * The chat page in a real headless Chromium against a real local channel. The harness plays the
 * host: it stores inbound and outbound messages in memory and echoes each message after a delay,
 * with the typing indicator on meanwhile.
 */
export interface Harness {
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
export function fakeControl(h: Harness): HostControl {
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

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startHarness(): Promise<Harness> {
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

// Live bindings: the test files read these as they are set here.
export let browser: Browser;
export let harness: Harness;
export let context: BrowserContext;
export let page: Page;
export let pageProblems: string[];

/** Debian's Chromium, headless, quiet on a machine with no network but loopback. */
export const launchChromium = () =>
  chromium.launch({
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

/** Registers the suite's hooks: one Chromium per file, a fresh page and host per test. */
export function useChatPage(): void {
  beforeAll(async () => {
    fs.mkdirSync(screenshots, { recursive: true });
    // No skip when Chromium is missing: launching fails and so does the suite.
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await context?.close();
    await harness?.channel.disconnect();
    if (harness) fs.rmSync(harness.home, { recursive: true, force: true });
  });
}

export const screenshots = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
export const snap = (name: string) => page.screenshot({ path: path.join(screenshots, `${name}.png`) });
export const DESKTOP = { width: 1000, height: 680 };
export const PHONE = { width: 390, height: 844 };

export async function openPage(
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

export async function expectText(selector: string, text: string): Promise<void> {
  await page.locator(selector, { hasText: text }).waitFor({ timeout: 10_000 });
}
