import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentTurn, startMockAnthropic, type MockAnthropic } from '../fixtures/mock-anthropic.js';
import {
  ensureHostBuild,
  killHost,
  makeHostHome,
  startHostProcess,
  withDb,
  type HostProcess,
} from '../helpers/host-process.js';

const COUNT = 60;
const BURST = 5;
const PER_MINUTE = 60;

/** The agent calls send_message 60 times, one per model turn, then answers. */
const floodScript = ({ body }: { body: unknown }) => {
  if (!isAgentTurn(body)) return { text: 'ok' };
  const messages = (body as { messages: Array<{ role: string; content: unknown }> }).messages;
  const sent = messages.filter(
    (m) =>
      m.role === 'assistant' &&
      Array.isArray(m.content) &&
      (m.content as Array<{ type?: string; name?: string }>).some(
        (b) => b.type === 'tool_use' && b.name === 'mcp__nanoclaw__send_message',
      ),
  ).length;
  if (sent < COUNT)
    return { toolUse: { name: 'mcp__nanoclaw__send_message', input: { text: `paced ${sent + 1}` } } };
  return { text: `DONE after ${COUNT}` };
};

type OutboxRow = { kind: string; state: string };
const outboxRows = (home: string) =>
  withDb(home, (db) => db.prepare('SELECT kind, state FROM outbox ORDER BY id').all() as OutboxRow[]);

/**
 * Through a real bwrap sandbox and the local channel: 60 send_message calls and the answer are
 * paced by the group policy, never dropped; the host is SIGKILLed half-way through the pacing, and
 * after a restart the rest arrives, each message exactly once, in order.
 */
describe('durable, paced outbox across a host kill (bwrap)', () => {
  let mock: MockAnthropic;
  let home: string;
  let host: HostProcess | undefined;

  beforeAll(async () => {
    ensureHostBuild();
    mock = await startMockAnthropic({ script: floodScript });
    home = makeHostHome(mock.url);
    fs.mkdirSync(path.join(home, 'config'), { recursive: true });
    fs.writeFileSync(
      path.join(home, 'config', 'group-policy.json'),
      JSON.stringify({ groups: { main: { outboundBurst: BURST, outboundPerMinute: PER_MINUTE } } }),
    );
  });
  afterAll(async () => {
    await killHost(host);
    await mock?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('delivers all 60 and the answer exactly once, in order, paced, across a SIGKILL', async () => {
    const env = { CONTAINER_RUNTIME: 'bwrap', IDLE_TIMEOUT: '120000' };
    host = await startHostProcess(home, env);
    await host.post('local:main', 'flood me');

    // The agent is done (its answer is queued) while the pacing still holds most messages back.
    await expect
      .poll(() => outboxRows(home).some((r) => r.kind === 'answer'), { timeout: 120_000, interval: 200 })
      .toBe(true);
    const sentBefore = outboxRows(home).filter((r) => r.state === 'sent').length;
    expect(sentBefore).toBeLessThan(COUNT / 2);
    const sent = () => outboxRows(home).filter((r) => r.state === 'sent').length;
    await expect.poll(sent, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(COUNT / 2);
    const before = await host.messages('local:main');
    // After the burst, one message per second.
    const times = before.filter((m) => m.fromAssistant).map((m) => Date.parse(m.timestamp));
    for (let i = BURST + 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(60_000 / PER_MINUTE - 150);

    host.proc.kill('SIGKILL');
    await host.exited;
    const pendingAtKill = outboxRows(home).filter((r) => r.state === 'pending').length;
    console.info(
      `outbox: ${sentBefore} sent when the answer was queued, ${pendingAtKill} pending at the kill`,
    );
    expect(pendingAtKill).toBeGreaterThan(10);

    host = await startHostProcess(home, env);
    await host.waitForReply('local:main', (t) => t === `DONE after ${COUNT}`, 120_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const expected = [...Array.from({ length: COUNT }, (_, i) => `paced ${i + 1}`), `DONE after ${COUNT}`];
    expect(await host.assistantTexts('local:main')).toEqual(expected);
    expect(outboxRows(home)).toEqual(
      expected.map((_, i) => ({ kind: i < COUNT ? 'agent' : 'answer', state: 'sent' })),
    );
    // The interrupted run was answered: no second run, no second flood.
    expect(mock.requests.filter((r) => isAgentTurn(r.body)).length).toBe(COUNT + 1);

    host.proc.kill('SIGTERM');
    expect(await host.exited).toEqual({ code: 0, signal: null });
  }, 300_000);
});
