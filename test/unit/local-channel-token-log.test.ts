import { PassThrough } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LocalChannel } from '../../src/channels/local/local-channel.js';
import { announceReady } from '../../src/cli/start.js';
import { App } from '../../src/app.js';
import { logger } from '../../src/logger.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { startHarness } from '../helpers/local-harness.js';
import { tempHome } from '../helpers/temp-home.js';

/** The host logger's output while `run` runs (the test environment otherwise silences it). */
async function captureLog(run: () => Promise<void>): Promise<string> {
  const stream = (logger as unknown as Record<symbol, { write(chunk: string): boolean }>)[
    pino.symbols.streamSym
  ]!;
  const originalWrite = stream.write.bind(stream);
  const level = logger.level;
  let text = '';
  stream.write = (chunk: string) => {
    text += chunk;
    return true;
  };
  logger.level = 'debug';
  try {
    await run();
  } finally {
    stream.write = originalWrite;
    logger.level = level;
  }
  return text;
}

function terminal(isTTY = true): { out: PassThrough & { isTTY: boolean }; printed: () => string } {
  const out = Object.assign(new PassThrough(), { isTTY });
  let printed = '';
  out.on('data', (c: Buffer) => (printed += c.toString()));
  return { out, printed: () => printed };
}

/** Opens the start-up link (and a wrong one), as the person's browser would. */
async function openLink(url: string): Promise<number[]> {
  const wrong = url.replace(/token=.*/, 'token=not-the-token-0123456789012345678901234567');
  const statuses: number[] = [];
  for (const link of [url, wrong]) statuses.push((await fetch(link, { redirect: 'manual' })).status);
  return statuses;
}

const fakeRuntime: SandboxRuntime = {
  kind: 'docker',
  ensureRunning: async () => undefined,
  imageExists: async () => true,
  spawn: () => {
    throw new Error('no sandboxes in this test');
  },
  stop: async () => undefined,
  cleanupOrphans: async () => [],
};

describe('the local chat token stays out of the log', () => {
  it('prints the link with its token to the terminal and logs only the port', async () => {
    const { out, printed } = terminal();
    let channel: LocalChannel | undefined;
    const log = await captureLog(async () => {
      const h = await startHarness();
      channel = h.channel;
      announceReady('bwrap', h.channel, out);
      expect(await openLink(h.channel.url())).toEqual([302, 401]);
      await h.channel.disconnect();
    });
    const token = channel!.token;
    expect(printed()).toBe(
      `NanoClaw is ready. Local chat: http://127.0.0.1:${channel!.port}/?token=${token}\n`,
    );
    expect(log).toContain('"msg":"NanoClaw ready"');
    expect(log).toContain(`"localChatPort":${channel!.port}`);
    expect(log).not.toContain(token);
    expect(log).not.toContain('token=');
  });

  it('prints no token when the output is not a terminal (a service, a file)', () => {
    const { out, printed } = terminal(false);
    announceReady(
      'docker',
      { port: 7823, url: () => 'http://127.0.0.1:7823/?token=secret' } as LocalChannel,
      out,
    );
    expect(printed()).toContain('http://127.0.0.1:7823/ (run `nanoclaw open`');
    expect(printed()).not.toContain('secret');
  });

  it('keeps it out of the log along the whole start path of the real host', async () => {
    const t = tempHome({ LOCAL_CHANNEL_PORT: '0' });
    const { out, printed } = terminal();
    let token = '';
    try {
      const log = await captureLog(async () => {
        const app = await App.create(t.config, fakeRuntime);
        await app.start();
        try {
          const local = app.channels.find((c) => c instanceof LocalChannel) as LocalChannel;
          announceReady(fakeRuntime.kind, local, out);
          token = local.token;
          await openLink(local.url());
        } finally {
          await app.stop();
        }
      });
      expect(token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
      expect(printed()).toContain(`?token=${token}`);
      expect(log).toContain('"msg":"NanoClaw ready"');
      expect(log).not.toContain(token);
    } finally {
      t.cleanup();
    }
  });
});
