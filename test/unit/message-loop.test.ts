import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/db/store.js';
import { MessageLoop } from '../../src/message-loop.js';
import type { NewMessage, RegisteredGroup } from '../../src/types.js';
import { FakeRunner, reply } from '../helpers/fake-runtime.js';
import { tempHome } from '../helpers/temp-home.js';

const FAMILY: RegisteredGroup = {
  jid: 'family@g.us',
  name: 'Family',
  folder: 'family',
  trigger: '@Andy',
  requiresTrigger: true,
  isMain: false,
  addedAt: '2026-01-01T00:00:00.000Z',
};
const MAIN: RegisteredGroup = { ...FAMILY, jid: 'local:main', name: 'Main', folder: 'main', isMain: true };

let seq = 0;
function msg(chatJid: string, content: string, extra: Partial<NewMessage> = {}): NewMessage {
  seq++;
  return {
    id: `m${seq}`,
    chatJid,
    sender: 'ann@s.whatsapp.net',
    senderName: 'Ann',
    content,
    timestamp: new Date(Date.UTC(2026, 0, 1, 10, 0, seq)).toISOString(),
    isFromMe: false,
    isBotMessage: false,
    ...extra,
  };
}

function setup(store: Store, runner: FakeRunner, maxConcurrent = 5) {
  const sent: Array<{ jid: string; text: string }> = [];
  const config = { ...env.config, maxConcurrentContainers: maxConcurrent, safetyPollMs: 60_000 };
  const loop = new MessageLoop({
    store,
    config,
    runner,
    send: async (jid, text) => {
      sent.push({ jid, text });
      store.messages.store(msg(jid, text, { isBotMessage: true, isFromMe: true }));
    },
    setTyping: async () => undefined,
  });
  /** Follow-ups piped into a running sandbox, as the agent would read them from its inbox. */
  const piped = (folder: string) => {
    const dir = path.join(config.ipcDir, folder, 'to-agent', 'input');
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => (JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { text: string }).text);
  };
  const ingest = (m: NewMessage) => {
    store.messages.store(m);
    loop.notify();
  };
  return { loop, queue: loop.queue, sent, piped, ingest };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

let env: ReturnType<typeof tempHome>;

describe('MessageLoop', () => {
  let store: Store;
  beforeEach(() => {
    env = tempHome();
    store = openStore(env.config.dbPath);
    store.groups.upsert(FAMILY);
    store.groups.upsert(MAIN);
  });
  afterEach(() => {
    store.close();
    env.cleanup();
  });

  it('accumulates non-trigger messages and includes them in the next triggered prompt', async () => {
    const runner = new FakeRunner();
    const { loop, ingest, sent } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, 'we land at 6'));
    ingest(msg(FAMILY.jid, 'bring snacks'));
    await settle();
    expect(runner.inputs).toHaveLength(0);

    ingest(msg(FAMILY.jid, '@Andy what time do we land?'));
    await settle();
    expect(runner.inputs).toHaveLength(1);
    const prompt = runner.inputs[0]!.prompt;
    expect(prompt).toContain('we land at 6');
    expect(prompt).toContain('bring snacks');
    expect(prompt).toContain('@Andy what time do we land?');
    expect(sent).toHaveLength(1);

    // Already processed messages are not sent again with the next trigger.
    ingest(msg(FAMILY.jid, '@Andy thanks'));
    await settle();
    expect(runner.inputs[1]!.prompt).not.toContain('bring snacks');
    loop.stop();
  });

  it('main needs no trigger, and the assistant’s own messages are never fed back', async () => {
    const runner = new FakeRunner();
    const { loop, ingest } = setup(store, runner);
    loop.start();
    ingest(msg(MAIN.jid, 'Andy: an echo of my own reply', { isFromMe: true }));
    ingest(msg(MAIN.jid, 'bot text', { isBotMessage: true }));
    await settle();
    expect(runner.inputs).toHaveLength(0);
    ingest(msg(MAIN.jid, 'plain question'));
    await settle();
    expect(runner.inputs).toHaveLength(1);
    expect(runner.inputs[0]!.prompt).not.toContain('echo of my own');
    expect(runner.inputs[0]!.prompt).not.toContain('bot text');
    expect(runner.inputs[0]!.isMain).toBe(true);
    loop.stop();
  });

  it('a group registered without trigger requirement runs on any message', async () => {
    store.groups.upsert({ ...FAMILY, requiresTrigger: false });
    const runner = new FakeRunner();
    const { loop, ingest } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, 'no trigger here'));
    await settle();
    expect(runner.inputs).toHaveLength(1);
    loop.stop();
  });

  it('rolls the cursor back when a run fails before any output, and retries the same messages', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let fail = true;
      const runner = new FakeRunner(async (input, hooks) => {
        if (fail) return { status: 'error', result: null, error: 'boom' };
        return reply(hooks, 'answer');
      });
      const { loop, ingest, sent } = setup(store, runner);
      loop.start();
      ingest(msg(FAMILY.jid, '@Andy help'));
      await vi.waitFor(() => expect(runner.inputs).toHaveLength(1));
      expect(sent).toHaveLength(0);
      fail = false;
      await vi.advanceTimersByTimeAsync(5000);
      await vi.waitFor(() => expect(runner.inputs).toHaveLength(2));
      expect(runner.inputs[1]!.prompt).toContain('@Andy help');
      await vi.waitFor(() => expect(sent).toEqual([{ jid: FAMILY.jid, text: 'answer' }]));
      loop.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('advances the cursor when output reached the chat even if the run then fails', async () => {
    const runner = new FakeRunner(async (_input, hooks) => {
      await reply(hooks, 'partial answer');
      return { status: 'error', result: null, error: 'crashed later' };
    });
    const { loop, ingest, sent } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, '@Andy do it'));
    await settle();
    expect(sent).toEqual([{ jid: FAMILY.jid, text: 'partial answer' }]);
    runner.behaviour = async (_i, hooks) => reply(hooks, 'second');
    ingest(msg(FAMILY.jid, '@Andy next'));
    await settle();
    expect(runner.inputs[1]!.prompt).not.toContain('do it');
    loop.stop();
  });

  it('pipes messages for a group whose sandbox is running into it', async () => {
    let release!: () => void;
    const runner = new FakeRunner(async (_input, hooks) => {
      await reply(hooks, 'first');
      await new Promise<void>((r) => (release = r));
      return { status: 'success', result: null };
    });
    const { loop, ingest, piped } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, '@Andy first'));
    await settle();
    ingest(msg(FAMILY.jid, '@Andy and a follow-up'));
    await settle();
    expect(runner.inputs).toHaveLength(1);
    expect(piped(FAMILY.folder)).toHaveLength(1);
    expect(piped(FAMILY.folder)[0]).toContain('and a follow-up');
    expect(piped(FAMILY.folder)[0]).not.toContain('@Andy first');
    release();
    await settle();
    loop.stop();
  });

  it('strips <internal> text before anything reaches the chat', async () => {
    const runner = new FakeRunner(async (_i, hooks) => reply(hooks, '<internal>plan</internal>Done.'));
    const { loop, ingest, sent } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, '@Andy go'));
    await settle();
    expect(sent).toEqual([{ jid: FAMILY.jid, text: 'Done.' }]);
    loop.stop();
  });

  it('remembers the session and resumes it on the next run', async () => {
    const runner = new FakeRunner(async (_i, hooks) => reply(hooks, 'ok', 'sess-42'));
    const { loop, ingest } = setup(store, runner);
    loop.start();
    ingest(msg(FAMILY.jid, '@Andy one'));
    await settle();
    ingest(msg(FAMILY.jid, '@Andy two'));
    await settle();
    expect(runner.inputs[0]!.sessionId).toBeUndefined();
    expect(runner.inputs[1]!.sessionId).toBe('sess-42');
    loop.stop();
  });

  it('recovers a message stored before a crash and handles it exactly once after restart', async () => {
    // First life: the message is stored and the loop has even seen it, but no agent ran.
    store.messages.store(msg(FAMILY.jid, '@Andy are you there?'));
    store.state.set('last_seen_seq', String(store.messages.latestSeq()));
    store.close();

    store = openStore(env.config.dbPath);
    const runner = new FakeRunner();
    const { loop, sent } = setup(store, runner);
    loop.start();
    await settle();
    expect(runner.inputs).toHaveLength(1);
    expect(sent).toHaveLength(1);
    loop.stop();

    // Another restart: nothing left to do.
    const runner2 = new FakeRunner();
    const second = setup(store, runner2);
    second.loop.start();
    await settle();
    expect(runner2.inputs).toHaveLength(0);
    second.loop.stop();
  });

  it('routes a backlog bigger than one store page in one check, not a page per safety poll', () => {
    // A channel delivering its offline backlog: 2,500 messages at once, the trigger last.
    for (let n = 1; n < 2500; n++) store.messages.store(msg(FAMILY.jid, `chatter ${n}`));
    store.messages.store(msg(FAMILY.jid, '@Andy what did I miss?'));
    const { loop } = setup(store, new FakeRunner());
    const checks: string[] = [];
    loop.queue.enqueueMessageCheck = (jid) => void checks.push(jid);
    loop.checkNewMessages();
    expect(checks).toEqual([FAMILY.jid]);
    expect(store.state.get('last_seen_seq')).toBe(String(store.messages.latestSeq()));
  });
});

describe('MessageLoop warm runs', () => {
  let store: Store;
  beforeEach(() => {
    env = tempHome();
    store = openStore(env.config.dbPath);
    store.groups.upsert(FAMILY);
  });
  afterEach(() => {
    store.close();
    env.cleanup();
  });

  /** A sandbox that waits for its inbox: answers each follow-up, ends at `_close`. */
  function inboxRunner(config: typeof env.config) {
    return new FakeRunner(async (input, hooks, group) => {
      const dir = path.join(config.ipcDir, group.folder, 'to-agent', 'input');
      const seen = new Set<string>();
      for (;;) {
        const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
        for (const name of names.filter((n) => n.endsWith('.json') && !seen.has(n))) {
          seen.add(name);
          const { text } = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { text: string };
          await reply(hooks, `answer to ${/>([^<]*)<\/message>\n<\/messages>$/.exec(text)?.[1]}`);
        }
        if (names.includes('_close')) return { status: 'success', result: null };
        await new Promise((r) => setTimeout(r, 5));
      }
    });
  }

  function warmSetup() {
    const runner = inboxRunner(env.config);
    const typing: string[] = [];
    const sent: string[] = [];
    const untriggered: string[] = [];
    const loop = new MessageLoop({
      store,
      config: { ...env.config, safetyPollMs: 60_000 },
      runner,
      send: async (jid, text) => {
        sent.push(text);
        store.messages.store(msg(jid, text, { isBotMessage: true, isFromMe: true }));
      },
      setTyping: async (jid, on) => void typing.push(`${jid}:${on}`),
      onUntriggered: (jid) => untriggered.push(jid),
    });
    const ingest = (m: NewMessage) => {
      store.messages.store(m);
      loop.notify();
    };
    const warm = () =>
      loop.queue.startWarm(FAMILY.jid, { idleMs: 200, max: 2 }, () => loop.runWarm(FAMILY.jid));
    return { loop, runner, typing, sent, untriggered, ingest, warm };
  }

  it('starts with no prompt, shows nothing and closes unseen when no message comes', async () => {
    const { loop, runner, typing, sent, warm } = warmSetup();
    loop.start();
    expect(warm()).toBe(true);
    await vi.waitFor(() => expect(loop.queue.isActive(FAMILY.jid)).toBe(false), { timeout: 2000 });
    expect(runner.inputs.map((i) => i.prompt)).toEqual(['']);
    expect(typing).toEqual([]);
    expect(sent).toEqual([]);
    expect(store.state.get(`agent_run:${FAMILY.jid}`)).toBe('');
    loop.stop();
  });

  it('answers the message that arrives as its first follow-up, with typing then', async () => {
    const { loop, runner, typing, sent, untriggered, ingest, warm } = warmSetup();
    loop.start();
    ingest(msg(FAMILY.jid, 'we land at 6'));
    await settle();
    expect(untriggered).toEqual([FAMILY.jid]);
    expect(warm()).toBe(true);
    ingest(msg(FAMILY.jid, '@Andy when do we land?'));
    await vi.waitFor(() => expect(sent).toEqual(['answer to @Andy when do we land?']), { timeout: 2000 });
    expect(runner.inputs).toHaveLength(1);
    expect(typing[0]).toBe(`${FAMILY.jid}:true`);
    loop.queue.closeStdin(FAMILY.jid);
    await vi.waitFor(() => expect(loop.queue.isActive(FAMILY.jid)).toBe(false), { timeout: 2000 });
    // Nothing left behind the cursor: a later trigger does not see the answered message again.
    expect(runner.inputs).toHaveLength(1);
    loop.stop();
  });

  it('runs a message piped in as the warm sandbox closed in a fresh run', async () => {
    const { loop, runner, sent, warm } = warmSetup();
    loop.start();
    warm();
    // The message is written just as the sandbox reads `_close`: it is never read there.
    store.messages.store(msg(FAMILY.jid, '@Andy late'));
    loop.checkNewMessages();
    const inbox = path.join(env.config.ipcDir, 'family', 'to-agent', 'input');
    fs.rmSync(inbox, { recursive: true });
    fs.mkdirSync(inbox);
    fs.writeFileSync(path.join(inbox, '_close'), '');
    await vi.waitFor(() => expect(runner.inputs.length).toBe(2), { timeout: 2000 });
    expect(runner.inputs[1]!.prompt).toContain('@Andy late');
    loop.queue.closeStdin(FAMILY.jid);
    await vi.waitFor(() => expect(loop.queue.isActive(FAMILY.jid)).toBe(false), { timeout: 2000 });
    expect(sent).toEqual([]);
    loop.stop();
  });
});
