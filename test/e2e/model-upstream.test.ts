import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentTurn, lastUserText, type MockScript } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

/**
 * The model upstream fails: overloaded (529), server error (500), or no answer at all. The real
 * SDK in a real sandbox talks to the mock through the host's model proxy.
 *
 * How long the SDK itself retries (measured with this image): a persistent 529 fails the run after
 * 3 attempts (~3 s); a persistent 500 or 502/504 is retried 10 times with back-off capped near 38 s
 * (~190 s) unless the response says `x-should-retry: false`; the model proxy says so when its own
 * upstream timeout fires, since the upstream already had the whole timeout.
 */
const RETRYING = /^I couldn’t answer yet: the model service isn’t answering properly\. I’m retrying/;

const upstream = {
  overloaded: true,
  serverError: 'transient' as 'transient' | 'persistent' | 'healed',
  hanging: true,
  calls: new Map<string, number>(),
};

const script: MockScript = ({ body }) => {
  if (!isAgentTurn(body)) return { text: 'ok' };
  const word = /\bUP-[a-z0-9]+/.exec(lastUserText(body))?.[0] ?? 'none';
  const calls = (upstream.calls.get(word) ?? 0) + 1;
  upstream.calls.set(word, calls);
  if (word === 'UP-overloaded' && upstream.overloaded)
    return { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } };
  if (word === 'UP-transient' && calls <= 2)
    return { error: { status: 500, type: 'api_error', message: 'Internal server error' } };
  if (word === 'UP-persistent' && upstream.serverError === 'persistent')
    return {
      error: { status: 500, type: 'api_error', message: 'Internal server error' },
      headers: { 'x-should-retry': 'false' },
    };
  if (word === 'UP-hang' && upstream.hanging) return { delayMs: 20_000, text: 'too late' };
  return { text: `ANSWER ${word}` };
};

describe('model upstream failures (docker)', () => {
  let host: E2eHost;

  beforeAll(async () => {
    host = await startE2eHost({
      runtime: 'docker',
      script,
      groups: ['busy', 'flaky', 'slow', 'bystander'],
      // Long enough that the sandbox still idles when the test looks at it on a loaded machine.
      tune: { retryBaseMs: 2_000, idleTimeoutMs: 15_000 },
      app: { modelUpstreamTimeoutMs: 3_000 },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  /** Waits a little longer, then checks the chat holds exactly these assistant messages. */
  async function expectExactly(chat: string, expected: Array<string | RegExp>): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const texts = host.assistantTexts(chat);
    expect(texts, JSON.stringify(texts)).toHaveLength(expected.length);
    expected.forEach((e, i) =>
      typeof e === 'string' ? expect(texts[i]).toBe(e) : expect(texts[i]).toMatch(e),
    );
  }

  it('529 overloaded: one plain notice after the second failed run, other groups keep working, then one answer', async () => {
    await host.post('local:busy', 'UP-overloaded what is the weather');
    await host.waitFor('local:busy', (t) => t.includes('isn’t answering properly'), 60_000);
    // The SDK tried 3 times in each of the two runs before the person was told.
    expect(upstream.calls.get('UP-overloaded')).toBeGreaterThanOrEqual(6);
    // The failing group does not hold anyone else up.
    await host.post('local:bystander', 'UP-bystander hello');
    await host.waitFor('local:bystander', (t) => t === 'ANSWER UP-bystander', 60_000);
    expect(host.assistantTexts('local:busy').some((t) => t.startsWith('ANSWER'))).toBe(false);

    upstream.overloaded = false;
    await host.waitFor('local:busy', (t) => t === 'ANSWER UP-overloaded', 60_000);
    await expectExactly('local:busy', [RETRYING, 'ANSWER UP-overloaded']);
    // SQLite: the question once, its answer once; nothing left to roll back.
    const rows = host.app.store.messages.history('local:busy', undefined, 100);
    expect(rows.filter((m) => m.content.includes('UP-overloaded')).map((m) => m.isBotMessage)).toEqual([
      false,
      true,
    ]);
    // While the sandbox idles, everything it was given counts as answered; once it closed,
    // no rollback point is left.
    expect(host.app.store.state.get('agent_run:local:busy')).toBe(
      host.app.store.state.get('agent_seq:local:busy'),
    );
    await expect.poll(() => host.app.queue.isActive('local:busy'), { timeout: 30_000 }).toBe(false);
    expect(host.app.store.state.get('agent_run:local:busy')).toBe('');
  }, 180_000);

  it('500 that heals within the SDK’s own retries: no notice, one answer', async () => {
    await host.post('local:flaky', 'UP-transient ping');
    await host.waitFor('local:flaky', (t) => t === 'ANSWER UP-transient', 60_000);
    expect(upstream.calls.get('UP-transient')).toBe(3);
    await expectExactly('local:flaky', ['ANSWER UP-transient']);
  }, 180_000);

  it('500 the SDK may not retry: the host retries, one plain notice after the second failure, one answer', async () => {
    upstream.serverError = 'persistent';
    await host.post('local:flaky', 'UP-persistent ping');
    await host.waitFor('local:flaky', (t) => t.includes('isn’t answering properly'), 60_000);
    // The queue retries in the background (2 s, 4 s, ... less jitter) without telling the person again.
    await expect
      .poll(() => upstream.calls.get('UP-persistent') ?? 0, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(2);
    upstream.serverError = 'healed';
    await host.waitFor('local:flaky', (t) => t === 'ANSWER UP-persistent', 60_000);
    await expectExactly('local:flaky', ['ANSWER UP-transient', RETRYING, 'ANSWER UP-persistent']);
  }, 180_000);

  it('an upstream that never answers: the proxy times out, one plain notice, then one answer', async () => {
    const started = Date.now();
    await host.post('local:slow', 'UP-hang ping');
    await host.waitFor('local:slow', (t) => t.includes('did not answer in time'), 60_000);
    // Two runs of the proxy's 3 s timeout, not the SDK's ten retries, decided how long the person waited.
    expect(Date.now() - started).toBeLessThan(45_000);
    upstream.hanging = false;
    await host.waitFor('local:slow', (t) => t === 'ANSWER UP-hang', 60_000);
    await expectExactly('local:slow', [
      /^I couldn’t answer yet: the model service did not answer in time\. I’m retrying/,
      'ANSWER UP-hang',
    ]);
    await expectExactly('local:bystander', ['ANSWER UP-bystander']);
  }, 180_000);
});
