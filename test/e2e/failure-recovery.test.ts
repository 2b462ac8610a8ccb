import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MockScript } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { spyOnRuntime, type SpawnRecord } from '../helpers/sandbox-spy.js';
import { scenarioScript } from '../helpers/scenario-script.js';

const BAD_KEY = 'sk-ant-revoked-0123456789';
/** The model refuses one key as Anthropic does (401); any other it answers. */
const script: MockScript = (req) =>
  req.headers['x-api-key'] === BAD_KEY
    ? { error: { status: 401, type: 'authentication_error', message: 'invalid x-api-key' } }
    : scenarioScript(req);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Permanent causes through a real bwrap sandbox and the local channel: the person is told at each
 * message (one notice a minute), no sandbox starts while the cause is known to hold, and once .env
 * is fixed the waiting messages are answered by the running host.
 */
describe('permanent failures recover by themselves (bwrap)', () => {
  let host: E2eHost;
  let spawns: SpawnRecord[];
  let envFile: string;
  let baseUrl: string;
  const setKey = (key: string | undefined) =>
    fs.writeFileSync(envFile, `${key ? `ANTHROPIC_API_KEY=${key}\n` : ''}ANTHROPIC_BASE_URL=${baseUrl}\n`, {
      mode: 0o600,
    });
  const notices = (chat: string, re: RegExp) => host.assistantTexts(chat).filter((t) => re.test(t));
  const spawnsFor = (folder: string) => spawns.filter((s) => s.spec.labels['nanoclaw.group'] === folder);

  beforeAll(async () => {
    host = await startE2eHost({
      runtime: 'bwrap',
      script,
      groups: ['revoked'],
      prepare: (home) => {
        envFile = path.join(home, '.env');
        baseUrl = /^ANTHROPIC_BASE_URL=(.*)$/m.exec(fs.readFileSync(envFile, 'utf8'))![1]!;
        setKey(undefined);
      },
      wrapRuntime: (real) => {
        const spy = spyOnRuntime(real);
        spawns = spy.spawns;
        return spy.runtime;
      },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('no credentials: three messages 70 s apart each get a notice, no sandbox starts; the key added, they are answered', async () => {
    const NO_KEY = /^I can’t reach the model: no credentials are set\. Add ANTHROPIC_API_KEY/;
    await host.post('local:main', 'hello');
    await host.waitFor('local:main', (t) => NO_KEY.test(t), 30_000);
    // Within the same minute: the notice is shared.
    await host.post('local:main', 'and now?');
    await sleep(3_000);
    expect(notices('local:main', NO_KEY)).toHaveLength(1);
    for (const [i, text] of ['still there?', 'last one'].entries()) {
      await sleep(70_000 - 3_000 * (1 - i));
      await host.post('local:main', text);
      await expect.poll(() => notices('local:main', NO_KEY).length, { timeout: 30_000 }).toBe(i + 2);
    }
    // Nothing retried on a timer: the proxy told the cause without a sandbox.
    expect(spawnsFor('main')).toHaveLength(0);
    expect(host.app.queue.isActive('local:main')).toBe(false);

    setKey('sk-ant-fixed-0123456789');
    const answer = await host.reply('local:main', (t) => t.startsWith('ECHO:'), 90_000);
    expect(answer).toBe('ECHO: last one');
    const prompt = JSON.parse(spawnsFor('main')[0]!.stdin) as { prompt: string };
    for (const text of ['hello', 'and now?', 'still there?', 'last one'])
      expect(prompt.prompt).toContain(text);
    await sleep(3_000);
    expect(spawnsFor('main')).toHaveLength(1);
    expect(host.assistantTexts('local:main').filter((t) => t.startsWith('ECHO:'))).toEqual([answer]);
  }, 300_000);

  it('a key the model refuses: one sandbox, one notice; no sandbox while .env is unchanged; a new key answers', async () => {
    setKey(BAD_KEY);
    const REFUSED = /^I can’t reach the model: it refused the credentials/;
    await host.post('local:revoked', 'first');
    await host.waitFor('local:revoked', (t) => REFUSED.test(t), 90_000);
    expect(spawnsFor('revoked')).toHaveLength(1);
    await expect.poll(() => host.app.queue.isActive('local:revoked'), { timeout: 30_000 }).toBe(false);
    await host.post('local:revoked', 'second');
    await sleep(8_000);
    expect(spawnsFor('revoked')).toHaveLength(1);
    expect(notices('local:revoked', REFUSED)).toHaveLength(1);

    setKey('sk-ant-rotated-0123456789');
    expect(await host.reply('local:revoked', (t) => t.startsWith('ECHO:'), 90_000)).toBe('ECHO: second');
    expect(spawnsFor('revoked')).toHaveLength(2);
    expect(host.assistantTexts('local:revoked')).toHaveLength(2);
  }, 240_000);
});
