import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect } from 'vitest';
import type { ChatSummary, HistoryMessage } from '../../src/channels/local/api.js';
import { LocalChannel, type LocalChannelDeps } from '../../src/channels/local/local-channel.js';
import { SseParser, type SseEvent } from '../../src/channels/local/sse-parser.js';
import type { NewMessage } from '../../src/types.js';

export type ChatMeta = Parameters<LocalChannelDeps['callbacks']['onChatMetadata']>[0];

export interface Harness {
  home: string;
  tokenFile: string;
  channel: LocalChannel;
  messages: NewMessage[];
  metadata: ChatMeta[];
  historyCalls: Array<{ chat: string; after: string | undefined }>;
  stored: HistoryMessage[];
  deps: LocalChannelDeps;
}

export const harnesses: Harness[] = [];

export async function startHarness(
  overrides: Partial<LocalChannelDeps> = {},
  home?: string,
): Promise<Harness> {
  const dir = home ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-local-'));
  const h = {
    home: dir,
    tokenFile: path.join(dir, 'data', 'local-channel.token'),
    messages: [] as NewMessage[],
    metadata: [] as ChatMeta[],
    historyCalls: [] as Harness['historyCalls'],
    stored: [] as HistoryMessage[],
  } as Harness;
  const chats: ChatSummary[] = [
    {
      jid: 'local:main',
      name: 'main',
      registered: true,
      isMain: true,
      lastMessageTime: '2024-01-01T00:00:00.000Z',
    },
    {
      jid: '123@g.us',
      name: 'Family',
      registered: true,
      isMain: false,
      lastMessageTime: '2024-01-01T00:00:00.000Z',
    },
  ];
  h.deps = {
    port: 0,
    tokenFile: h.tokenFile,
    assistantName: 'Andy',
    callbacks: {
      onMessage: (m) => h.messages.push(m),
      onChatMetadata: (c) => h.metadata.push(c),
    },
    history: (chat, after) => {
      h.historyCalls.push({ chat, after });
      return h.stored;
    },
    chats: () => chats,
    isRegistered: (jid) => jid === 'local:main',
    ...overrides,
  };
  h.channel = new LocalChannel(h.deps);
  await h.channel.connect();
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    await h.channel.disconnect();
    fs.rmSync(h.home, { recursive: true, force: true });
  }
});

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: () => Record<string, unknown>;
}

export function request(
  h: Harness,
  opts: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    auth?: boolean;
  },
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth !== false) headers.authorization ??= `Bearer ${h.channel.token}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: h.channel.port, method: opts.method ?? 'GET', path: opts.path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    // A server that answers early (413) may close while we still write; the response still counts.
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function post(
  h: Harness,
  body: string | Buffer,
  chat = 'local:main',
  headers: Record<string, string> = {},
) {
  return request(h, {
    method: 'POST',
    path: `/api/chats/${chat}/messages`,
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Opens /api/events and collects parsed events until closed. */
export function subscribe(h: Harness, headers: Record<string, string> = {}) {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  let raw = '';
  let ended = false;
  let req: http.ClientRequest | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    req = http.get(
      {
        host: '127.0.0.1',
        port: h.channel.port,
        path: '/api/events',
        headers: { authorization: `Bearer ${h.channel.token}`, ...headers },
      },
      (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          raw += chunk;
          events.push(...parser.push(chunk));
        });
        res.on('end', () => (ended = true));
        res.on('close', () => (ended = true));
        resolve();
      },
    );
    req.on('error', (err) => (ended ? undefined : reject(err)));
  });
  return {
    ready,
    events,
    raw: () => raw,
    ended: () => ended,
    close: () => req?.destroy(),
  };
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
