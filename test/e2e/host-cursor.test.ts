import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentOutput } from '../../src/types.js';
import { FakeRuntime, reply } from '../helpers/fake-runtime.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { tempHome } from '../helpers/temp-home.js';
import { openStore } from '../../src/db/store.js';
import { ensureMainGroup } from '../../src/groups.js';

const post = (host: E2eHost, chat: string, text: string) => host.postRaw(chat, JSON.stringify({ text }));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The cursor rule with the real App (store, queue, loop, IPC watcher, local channel) and an
 * in-process runner: what is run again after a failure or a host stop, and what never is.
 */
describe('cursor rule and crash safety', () => {
  let host: E2eHost | undefined;
  afterEach(async () => {
    await host?.stop();
    host = undefined;
  });

  it('after a host died mid-run, the next start re-runs the messages once', async () => {
    const env = tempHome({ LOCAL_CHANNEL_PORT: '0' });
    // What a host killed mid-run leaves behind: the cursor moved past the message, and the
    // rollback point stored before it moved.
    const store = openStore(env.config.dbPath);
    ensureMainGroup(store, env.config);
    const seq = store.messages.store({
      id: 'm1',
      chatJid: 'local:main',
      sender: 'local-user',
      senderName: 'You',
      content: 'asked before the crash',
      timestamp: new Date().toISOString(),
      isFromMe: false,
      isBotMessage: false,
    })!;
    store.state.set('last_seen_seq', String(seq));
    store.state.set('agent_seq:local:main', String(seq));
    store.state.set('agent_run:local:main', '0');
    store.close();
    fs.writeFileSync(path.join(env.home, '.env'), 'ANTHROPIC_API_KEY=sk-ant-test\n'); // keyed, as it was

    const runner = new FakeRuntime(async (input, hooks) =>
      reply(hooks, `answered: ${input.prompt.length > 0}`),
    );
    host = await startE2eHost({ home: env.home, runtime: runner });
    await host.waitFor('local:main', (t) => t === 'answered: true');
    await sleep(200);
    expect(runner.inputs).toHaveLength(1);
    expect(runner.inputs[0]!.prompt).toContain('asked before the crash');
    expect(host.assistantTexts('local:main')).toEqual(['answered: true']);
    expect(host.app.store.state.get('agent_run:local:main')).toBe('');
    await host.stop();
    host = undefined;
    env.cleanup();
  });

  it('a send_message over IPC counts as output: a run failing afterwards is not repeated', async () => {
    const runner = new FakeRuntime(async (): Promise<AgentOutput> => {
      const dir = path.join(host!.config.ipcDir, 'main', 'from-agent', 'messages');
      fs.writeFileSync(
        path.join(dir, `${Date.now()}-a.json`),
        JSON.stringify({ type: 'message', chatJid: 'local:main', text: 'on it, one moment' }),
      );
      await sleep(300);
      return { status: 'error', result: null, error: 'Sandbox exited with code 137' };
    });
    host = await startE2eHost({ runtime: runner, tune: { retryBaseMs: 50 } });
    await post(host, 'local:main', 'do the thing');
    await host.waitFor('local:main', (t) => t === 'on it, one moment');
    await sleep(500);
    expect(runner.inputs).toHaveLength(1);
    expect(host.assistantTexts('local:main')).toEqual(['on it, one moment']);
  });

  it('a follow-up piped into a sandbox that closed without reading it is run again', async () => {
    let piped: () => void;
    const pipedIn = new Promise<void>((resolve) => (piped = resolve));
    const runner = new FakeRuntime(async (input, hooks): Promise<AgentOutput> => {
      if (runner.inputs.length === 1) {
        await reply(hooks, 'answer 1');
        await pipedIn; // the follow-up lands in input/, but this sandbox is closing: it ends unread
        return { status: 'success', result: null };
      }
      return reply(hooks, `answer 2: ${input.prompt.includes('second') && !input.prompt.includes('first')}`);
    });
    host = await startE2eHost({ runtime: runner });
    await post(host, 'local:main', 'first');
    await host.waitFor('local:main', (t) => t === 'answer 1');
    await post(host, 'local:main', 'second');
    const inputDir = path.join(host.config.ipcDir, 'main', 'to-agent', 'input');
    await expect.poll(() => fs.readdirSync(inputDir).length).toBe(1);
    piped!();
    await host.waitFor('local:main', (t) => t.startsWith('answer 2'));
    expect(host.assistantTexts('local:main')).toEqual(['answer 1', 'answer 2: true']);
  });

  it('shutdown: `_close` first, then the sandboxes still running after the grace period are stopped', async () => {
    const stopped: string[] = [];
    const runtime = new (class extends FakeRuntime {
      override async stop(name: string): Promise<void> {
        stopped.push(name);
        await super.stop(name);
      }
    })(() => new Promise<AgentOutput>(() => undefined));
    host = await startE2eHost({ runtime, tune: { shutdownGraceMs: 300 } });
    await post(host, 'local:main', 'a long job');
    await expect.poll(() => host!.app.queue.isActive('local:main')).toBe(true);
    const closeFile = path.join(host.config.ipcDir, 'main', 'to-agent', 'input', '_close');
    const started = Date.now();
    await host.app.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(fs.existsSync(closeFile)).toBe(true);
    expect(stopped).toEqual([expect.stringMatching(/^nanoclaw-main-\d+$/)]);
    // The host ended the run: no failure notice, and the message waits for the next start.
    const rows = openStore(host.config.dbPath);
    try {
      expect(rows.messages.history('local:main', undefined, 10).filter((m) => m.isBotMessage)).toEqual([]);
      expect(rows.state.get('agent_seq:local:main') ?? '0').toBe('0');
    } finally {
      rows.close();
    }
  });
});
