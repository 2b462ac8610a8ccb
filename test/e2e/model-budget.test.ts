import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectChecks } from '../../src/cli/doctor.js';
import { registerGroup } from '../../src/groups.js';
import {
  isAgentTurn,
  lastUserText,
  type MockScript,
  type MockTurn,
  type RecordedRequest,
} from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

/**
 * SPEC §5.3 and §7 through real sandboxes: the model proxy records every call's tokens for the
 * group it came from, refuses calls once the group's daily budget is spent (telling the chat once,
 * never calling the model), and passes upstream failures on so the SDK retries them, while the
 * host keeps serving everyone else.
 *
 * The mock answers by a marker in the chat text: FLAKY fails its first calls in several ways,
 * CAPPED reports a large usage, anything else echoes with a fixed usage.
 */
const USAGE = { input_tokens: 1000, output_tokens: 23 };
const CAPPED_USAGE = { input_tokens: 5000, output_tokens: 5 };
const BUDGET = 1000;
const FLAKY_FAILURES: MockTurn[] = [
  { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } },
  { error: { status: 500, type: 'api_error', message: 'Internal server error' } },
  { dropConnection: true },
  { error: { status: 500, type: 'api_error', message: 'Internal server error' } },
  { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } },
];

function createScript(): { script: MockScript; calls: Map<string, number[]> } {
  const started = Date.now();
  /** Per marker, when each call arrived (ms since start). */
  const calls = new Map<string, number[]>();
  const script: MockScript = ({ body }) => {
    if (!isAgentTurn(body)) return { text: 'ok', usage: USAGE };
    const text = lastUserText(body);
    const marker = /\b(FLAKY|CAPPED|STEADY|USAGE)\b/.exec(text)?.[1] ?? 'OTHER';
    const seen = calls.get(marker) ?? [];
    seen.push(Date.now() - started);
    calls.set(marker, seen);
    if (marker === 'FLAKY') return FLAKY_FAILURES[seen.length - 1] ?? { text: 'RECOVERED', usage: USAGE };
    if (marker === 'CAPPED') return { text: 'CAPPED ANSWER', usage: CAPPED_USAGE };
    return { text: `ECHO ${marker}`, usage: USAGE };
  };
  return { script, calls };
}

const modelCalls = (requests: RecordedRequest[]) =>
  requests.filter((r) => r.method === 'POST' && r.path.startsWith('/v1/messages?')).length;

const budgetTexts = (texts: string[]) => texts.filter((t) => /budget/i.test(t));

describe.each(['docker', 'bwrap'] as const)(
  'model proxy: usage, budget, upstream failures (%s)',
  (runtime) => {
    let host: E2eHost;
    const { script, calls } = createScript();

    beforeAll(async () => {
      host = await startE2eHost({
        runtime,
        script,
        prepare: (home) => {
          const configDir = path.join(home, 'config');
          fs.mkdirSync(configDir, { recursive: true });
          fs.writeFileSync(
            path.join(configDir, 'group-policy.json'),
            JSON.stringify({ groups: { capped: { dailyTokenBudget: BUDGET } } }),
          );
        },
      });
      for (const folder of ['flaky', 'steady', 'capped']) {
        const registered = registerGroup(host.app.store, host.app.config, {
          jid: `local:${folder}`,
          name: folder,
          folder,
          requiresTrigger: false,
        });
        expect(registered.ok).toBe(true);
      }
      host.app.ipc.syncWatchers();
    });
    afterAll(async () => {
      await host?.stop();
    });

    it('records each call’s tokens for its group: `nanoclaw doctor` and GET /api/status show them', async () => {
      await host.post('local:main', 'USAGE please');
      await host.reply('local:main', (t) => t === 'ECHO USAGE');
      // Wait for the sandbox to finish, so every call it made has been counted.
      await expect.poll(() => host.app.queue.isActive('local:main'), { timeout: 30_000 }).toBe(false);
      const requests = modelCalls(host.mock.requests);
      expect(requests).toBeGreaterThan(0);
      const tokens = requests * (USAGE.input_tokens + USAGE.output_tokens);

      const checks = await collectChecks(host.app.config);
      const usage = checks.find((c) => c.name === 'usage today');
      expect(usage?.detail).toBe(`main: ${tokens} tokens / ${requests} requests`);

      const res = await fetch(`http://127.0.0.1:${host.local.port}/api/status`, {
        headers: { authorization: `Bearer ${host.local.token}` },
      });
      expect(res.status).toBe(200);
      const status = (await res.json()) as { usageToday: unknown[] };
      expect(status.usageToday).toEqual([
        {
          groupFolder: 'main',
          day: new Date().toISOString().slice(0, 10),
          inputTokens: requests * USAGE.input_tokens,
          outputTokens: requests * USAGE.output_tokens,
          requests,
        },
      ]);
    }, 120_000);

    it('passes 529, 500 and a dropped connection to the SDK, which retries until the answer arrives, while other groups are served', async () => {
      const started = Date.now();
      await host.post('local:flaky', 'FLAKY please');
      // Once the first call has failed, another group asks: it must not wait for the flaky one.
      await expect.poll(() => calls.get('FLAKY')?.length ?? 0, { timeout: 60_000 }).toBeGreaterThan(0);
      await host.post('local:steady', 'STEADY please');
      await host.reply('local:steady', (t) => t === 'ECHO STEADY');
      const flakyCallsWhenSteadyAnswered = calls.get('FLAKY')!.length;
      expect(flakyCallsWhenSteadyAnswered).toBeLessThanOrEqual(FLAKY_FAILURES.length);
      expect(host.assistantTexts('local:flaky')).toEqual([]);

      await host.reply('local:flaky', (t) => t === 'RECOVERED', 120_000);
      // Every failure was retried by the SDK (the proxy passed each one on as a retryable failure),
      // and nothing else: one call per failure plus the one that succeeded.
      expect(calls.get('FLAKY')).toHaveLength(FLAKY_FAILURES.length + 1);
      expect(host.assistantTexts('local:flaky')).toEqual(['RECOVERED']);
      const [first, ...rest] = calls.get('FLAKY')!;
      console.log(
        `[${runtime}] flaky upstream: ${FLAKY_FAILURES.length} failures retried, answer after ${Date.now() - started} ms; ` +
          `retries at +${rest.map((t) => t - first!).join(', +')} ms`,
      );
    }, 180_000);

    it('once the daily budget is spent, tells each minute’s messages once, starts no sandbox and never calls the model', async () => {
      const idle = () =>
        expect.poll(() => host.app.queue.isActive('local:capped'), { timeout: 60_000 }).toBe(false);
      await host.post('local:capped', 'CAPPED one');
      await host.reply('local:capped', (t) => t === 'CAPPED ANSWER');
      expect(calls.get('CAPPED')).toHaveLength(1);
      expect(host.app.store.usage.tokensFor('capped', new Date().toISOString().slice(0, 10))).toBe(
        CAPPED_USAGE.input_tokens + CAPPED_USAGE.output_tokens,
      );
      await idle();

      await host.post('local:capped', 'CAPPED two');
      const notice = await host.reply('local:capped', (t) => /budget/i.test(t));
      expect(notice).toMatch(/daily model budget is spent/);
      expect(notice).not.toMatch(/[{}]|rate_limit_error|429/); // plain words, not an API error dump

      // The proxy knows the budget is spent: no sandbox starts for this message or the next one
      // (the same minute: it shares the notice), and nothing is retried on a timer.
      const logsDir = path.join(host.home, 'groups', 'capped', 'logs');
      const runs = fs.readdirSync(logsDir).length;
      await host.post('local:capped', 'CAPPED three');
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      expect(fs.readdirSync(logsDir)).toHaveLength(runs);
      expect(host.app.queue.isActive('local:capped')).toBe(false);

      expect(budgetTexts(host.assistantTexts('local:capped'))).toHaveLength(1);
      expect(host.assistantTexts('local:capped')).toEqual(['CAPPED ANSWER', notice]);
      // The refused calls never reached the model.
      expect(calls.get('CAPPED')).toHaveLength(1);
    }, 180_000);
  },
);
