import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { LocalChannel } from '../../src/channels/local/local-channel.js';
import { ChatError, runChat } from '../../src/cli/chat.js';
import { Harness, startHarness, waitFor } from '../helpers/local-harness.js';

describe('nanoclaw chat', () => {
  let echoHarness: Harness;

  beforeEach(async () => {
    const holder: { channel?: LocalChannel } = {};
    echoHarness = await startHarness({
      callbacks: {
        onChatMetadata: () => undefined,
        onMessage: (m) => {
          const channel = holder.channel!;
          void (async () => {
            await channel.setTyping(m.chatJid, true);
            await new Promise((r) => setTimeout(r, 50));
            await channel.sendMessage('local:elsewhere', 'not for this chat');
            await channel.sendMessage(m.chatJid, `echo: ${m.content}`);
            await channel.setTyping(m.chatJid, false);
          })();
        },
      },
    });
    holder.channel = echoHarness.channel;
  });

  it('posts typed lines and prints the replies for its chat, then ends on EOF', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'main',
      input,
      output,
    });
    await waitFor(() => printed.includes('Ctrl-D'), 'banner');
    input.write('hello there\n');
    await waitFor(() => printed.includes('Andy: echo: hello there'), 'the reply');
    expect(printed).toContain('… working');
    expect(printed).not.toContain('not for this chat');
    input.end();
    await done;
  });

  it('reports a refused post', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'local:side',
      input,
      output,
    });
    await waitFor(() => printed.includes('Ctrl-D'), 'banner');
    input.end(`${'z'.repeat(1024 * 1024 + 10)}\n`);
    await done;
    expect(printed).toMatch(/! not sent: \S/);
  });

  it('tells the user to run `nanoclaw start` when there is no token or no server', async () => {
    const emptyHome = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-chat-'));
    try {
      await expect(
        runChat({ home: emptyHome, port: echoHarness.channel.port, chat: 'main' }),
      ).rejects.toThrow(/No local chat token.*nanoclaw start/);
      const closedPort = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(port));
        });
      });
      const attempt = runChat({ home: echoHarness.home, port: closedPort, chat: 'main' });
      await expect(attempt).rejects.toBeInstanceOf(ChatError);
      await expect(attempt).rejects.toThrow(
        /not running at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*nanoclaw start/,
      );
    } finally {
      fs.rmSync(emptyHome, { recursive: true, force: true });
    }
  });

  it('ends with a clear error when the assistant goes away mid-chat', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const done = runChat({
      home: echoHarness.home,
      port: echoHarness.channel.port,
      chat: 'main',
      input,
      output,
    });
    await waitFor(() => printed.includes('Ctrl-D'), 'banner');
    await echoHarness.channel.disconnect();
    await expect(done).rejects.toThrow(/Lost the connection.*nanoclaw start/);
  });
});
