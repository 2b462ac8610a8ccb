import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isAgentTurn, lastUserText, type MockScript } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { onceTask } from '../helpers/once-task.js';

/**
 * Warm-ahead through real bwrap sandboxes, the real agent-runner and SDK: a sandbox started before
 * its input sends nothing to the model, closes unseen when nothing comes, takes the message or the
 * due task's prompt when it does, and never holds a slot a real run waits for.
 */

/** Every agent turn, with the time it reached the model and what it asked. */
const turns: Array<{ at: number; text: string }> = [];
const script: MockScript = ({ body }) => {
  if (!isAgentTurn(body)) return { text: 'ok' };
  const text = lastUserText(body);
  turns.push({ at: Date.now(), text });
  const marker = /wa-[a-z0-9-]+/.exec(text)?.[0] ?? 'none';
  return { text: `answer ${marker}`, ...(text.includes('slow') && { delayMs: 1500 }) };
};

const WARM = { enabled: true, idleMs: 2000, max: 2, taskLeadMs: 3000, recentDays: 7 };

function runInputs(home: string, folder: string): Array<{ promptLength: number; isScheduledTask?: boolean }> {
  const dir = path.join(home, 'groups', folder, 'logs');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => JSON.parse(/^Input: (.+)$/m.exec(fs.readFileSync(path.join(dir, f), 'utf8'))?.[1] ?? '{}'));
}

describe('warm-ahead through real sandboxes (bwrap)', () => {
  let host: E2eHost;
  const typingShown: string[] = [];

  async function start(env: Record<string, string> = {}) {
    turns.length = 0;
    typingShown.length = 0;
    host = await startE2eHost({
      runtime: 'bwrap',
      script,
      groups: ['w1', 'w2', 'w3'],
      env,
      app: { warmAhead: WARM },
    });
    const setTyping = host.app.outbound.setTyping.bind(host.app.outbound);
    host.app.outbound.setTyping = (jid, on) => {
      if (on) typingShown.push(jid);
      return setTyping(jid, on);
    };
  }

  afterEach(async () => {
    await host?.stop();
  });

  it('closes a warm sandbox that gets no message, unseen, and answers a message from a warm one', async () => {
    await start();
    const { app } = host;
    app.warm.onTyping('local:w1');
    expect(app.queue.isWarm('local:w1')).toBe(true);
    await vi.waitFor(() => expect(app.queue.isActive('local:w1')).toBe(false), {
      timeout: 30_000,
      interval: 50,
    });
    expect(turns).toEqual([]);
    expect(host.mock.requests.map((r) => r.path)).toEqual([]);
    expect(host.assistantTexts('local:w1')).toEqual([]);
    expect(typingShown).toEqual([]);
    expect(runInputs(host.home, 'w1')).toEqual([expect.objectContaining({ promptLength: 0 })]);

    // Typing, then the message 1 s later: the warm sandbox answers it, no second sandbox.
    app.warm.onTyping('local:w2');
    await sleep(1000);
    expect(app.queue.isWarm('local:w2')).toBe(true);
    expect((await host.post('local:w2', 'hello wa-m1')).status).toBe(202);
    await host.reply('local:w2', (t) => t === 'answer wa-m1', 30_000);
    // The runner's warm-up turn (blocked by its own hook) never reaches the model.
    expect(JSON.stringify(host.mock.requests.map((r) => r.body))).not.toContain('nanoclaw-warm-up');
    expect(runInputs(host.home, 'w2')).toHaveLength(0); // still running: its log is written at the end
    app.queue.closeStdin('local:w2');
    await vi.waitFor(() => expect(runInputs(host.home, 'w2')).toHaveLength(1), { timeout: 30_000 });
    expect(runInputs(host.home, 'w2')[0]!.promptLength).toBe(0);
  }, 90_000);

  it('hands a task its prompt in its warm sandbox at the due time, never before', async () => {
    await start();
    const { app } = host;
    const due = Date.now() + 5000;
    const task = onceTask('task-w1', 'w1', 'report wa-t1', due);
    app.store.tasks.create(task);
    app.scheduler.reschedule();
    await vi.waitFor(() => expect(app.queue.isWarm('local:w1')).toBe(true), { timeout: 5000, interval: 20 });
    expect(Date.now()).toBeLessThan(due);
    await host.reply('local:w1', (t) => t === 'answer wa-t1', 30_000);
    const asked = turns.filter((t) => t.text.includes('wa-t1'));
    expect(asked.length).toBeGreaterThan(0);
    expect(Math.min(...asked.map((t) => t.at))).toBeGreaterThanOrEqual(due);
    expect(asked[0]!.text).toContain('[SCHEDULED TASK');
    await vi.waitFor(() => expect(app.store.tasks.byId('task-w1')?.status).toBe('completed'), {
      timeout: 30_000,
    });
    const runs = runInputs(host.home, 'w1');
    expect(runs).toEqual([expect.objectContaining({ promptLength: 0, isScheduledTask: true })]);
    expect(typingShown).toEqual([]);
  }, 90_000);

  it('never takes the last free slot from a queued real run', async () => {
    await start({ MAX_CONCURRENT_CONTAINERS: '1' });
    const { app } = host;
    // The one slot is warm: a real message elsewhere closes it and runs.
    app.warm.onTyping('local:w1');
    expect(app.queue.isWarm('local:w1')).toBe(true);
    await host.post('local:w2', 'slow question wa-r1');
    await host.reply('local:w2', (t) => t === 'answer wa-r1', 60_000);
    expect(app.queue.isActive('local:w1')).toBe(false);
    expect(host.assistantTexts('local:w1')).toEqual([]);

    // w2 idles in the slot and w3 waits: no warm start may take the slot w3 is waiting for.
    await host.post('local:w3', 'next wa-r2');
    await sleep(200);
    app.warm.onTyping('local:w1');
    expect(app.queue.isActive('local:w1')).toBe(false);
    await host.reply('local:w3', (t) => t === 'answer wa-r2', 60_000);
    expect(turns.some((t) => t.text.includes('wa-r2'))).toBe(true);
  }, 120_000);
});
