import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { logger } from '../../src/logger.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

const BURST = 5;

/** 1000 send_message files, each written to a temp name and renamed, as the MCP server does. */
const FLOOD = [
  'RUN: cd /workspace/ipc/messages && i=0; while [ $i -lt 1000 ]; do i=$((i+1));',
  'printf \'{"type":"message","chatJid":"local:main","text":"flood %d"}\' $i > .f$i.tmp',
  '&& mv .f$i.tmp $(printf %013d $i)-flood.json; done; echo wrote $i',
].join(' ');

/**
 * An agent floods its chat through IPC from inside a real sandbox. The chat gets at most the
 * group's burst (group-policy.json); the rest is dropped and logged; the host keeps answering.
 */
describe('send_message flood from an agent (docker)', () => {
  let host: E2eHost;
  const warn = vi.spyOn(logger, 'warn');

  beforeAll(async () => {
    host = await startE2eHost({
      runtime: 'docker',
      script: scenarioScript,
      groups: ['other'],
      prepare: (home) => {
        fs.mkdirSync(path.join(home, 'config'), { recursive: true });
        // Refill of one message per two minutes: within this test, the burst is all there is.
        fs.writeFileSync(
          path.join(home, 'config', 'group-policy.json'),
          JSON.stringify({ groups: { main: { outboundBurst: BURST, outboundPerMinute: 0.5 } } }),
        );
      },
    });
  });
  afterAll(async () => {
    warn.mockRestore();
    await host?.stop();
  });

  it('delivers at most the burst, drops and logs the rest, and keeps answering', async () => {
    const started = Date.now();
    await host.post('local:main', FLOOD);
    const messagesDir = path.join(host.home, 'data', 'ipc', 'main', 'from-agent', 'messages');
    // The agent wrote all 1000 and the host has handled every one of them.
    await expect
      .poll(() => host.mock.requests.some((r) => JSON.stringify(r.body ?? '').includes('wrote 1000')), {
        timeout: 120_000,
      })
      .toBe(true);
    await expect
      .poll(() => fs.readdirSync(messagesDir).filter((n) => n.endsWith('.json')).length, { timeout: 60_000 })
      .toBe(0);
    const handledMs = Date.now() - started;

    // The other group is not held up by the flood (its own bucket is full).
    await host.post('local:other', 'still there?');
    await host.waitFor('local:other', (t) => t === 'ECHO: still there?', 60_000);

    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const sent = host.assistantTexts('local:main');
    // The chat (and its stored history) got the burst and nothing more; the final answer too was
    // over the limit.
    expect(sent).toHaveLength(BURST);
    expect(sent.every((t) => /^flood \d+$/.test(t))).toBe(true);
    // Dropped, not quarantined: the files were valid, only over the limit.
    const errorsDir = path.join(host.home, 'data', 'ipc', 'errors');
    const quarantined = fs.existsSync(errorsDir) ? fs.readdirSync(errorsDir) : [];
    expect(quarantined.filter((n) => n.includes('flood'))).toEqual([]);
    // Logged as a flood (first drop, then every 100th), not as 995 lines.
    const drops = warn.mock.calls.filter((c) => c[1] === 'outbound message dropped by rate limit');
    expect(drops.length).toBeGreaterThanOrEqual(9);
    expect(drops.length).toBeLessThanOrEqual(10);
    expect(drops.at(-1)![0]).toMatchObject({ jid: 'local:main', dropped: expect.any(Number) });
    expect((drops.at(-1)![0] as { dropped: number }).dropped).toBeGreaterThanOrEqual(900);
    console.info(`flood: 1000 IPC files handled ${handledMs} ms after the request`);
  });
});
