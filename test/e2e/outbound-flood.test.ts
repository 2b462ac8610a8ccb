import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

const BURST = 5;
const PER_MINUTE = 600;
const CAP = 100;

/** 1000 send_message files, each written to a temp name and renamed, as the MCP server does. */
const FLOOD = [
  'RUN: cd /workspace/ipc/messages && i=0; while [ $i -lt 1000 ]; do i=$((i+1));',
  'printf \'{"type":"message","chatJid":"local:main","text":"flood %d"}\' $i > .f$i.tmp',
  '&& mv .f$i.tmp $(printf %013d $i)-flood.json; done; echo wrote $i',
].join(' ');

/**
 * An agent floods its chat through IPC from inside a real sandbox. Nothing is dropped by the rate
 * limit: the first 100 (the per-run cap) reach the chat paced by the group's bucket
 * (group-policy.json), the rest are refused and quarantined, the person is told once, the answer
 * arrives, and the other group is not held up.
 */
describe('send_message flood from an agent (docker)', () => {
  let host: E2eHost;

  beforeAll(async () => {
    host = await startE2eHost({
      runtime: 'docker',
      script: scenarioScript,
      groups: ['other'],
      prepare: (home) => {
        fs.mkdirSync(path.join(home, 'config'), { recursive: true });
        fs.writeFileSync(
          path.join(home, 'config', 'group-policy.json'),
          JSON.stringify({ groups: { main: { outboundBurst: BURST, outboundPerMinute: PER_MINUTE } } }),
        );
      },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('delivers the capped first 100 paced and in order, refuses the rest with one notice, and answers', async () => {
    const started = Date.now();
    await host.post('local:main', FLOOD);
    const messagesDir = path.join(host.home, 'data', 'ipc', 'main', 'from-agent', 'messages');
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

    await host.waitFor('local:main', (t) => t.startsWith('RESULT: wrote 1000'), 60_000);
    const sent = host.assistantTexts('local:main');
    expect(sent).toEqual([
      ...Array.from({ length: CAP }, (_, i) => `flood ${i + 1}`),
      `I stopped sending after ${CAP} messages in one run.`,
      expect.stringMatching(/^RESULT: wrote 1000/),
    ]);
    // Paced: after the burst, one message per 100 ms.
    const times = host.app.store.messages
      .history('local:main', undefined, 1000)
      .filter((m) => m.isBotMessage)
      .map((m) => Date.parse(m.timestamp));
    expect(times[CAP - 1]! - times[BURST - 1]!).toBeGreaterThanOrEqual(
      ((CAP - BURST) * 60_000) / PER_MINUTE - 200,
    );
    // Past the cap: refused and quarantined, each with the reason.
    const errorsDir = path.join(host.home, 'data', 'ipc', 'errors');
    const quarantined = fs.existsSync(errorsDir) ? fs.readdirSync(errorsDir) : [];
    expect(quarantined.filter((n) => n.includes('flood') && n.endsWith('.json'))).toHaveLength(1000 - CAP);
    console.info(`flood: 1000 IPC files handled ${handledMs} ms after the request`);
  }, 300_000);
});
