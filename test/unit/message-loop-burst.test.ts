import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/db/store.js';
import { MessageLoop } from '../../src/message-loop.js';
import type { NewMessage, RegisteredGroup } from '../../src/types.js';
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

function message(n: number, content: string): NewMessage {
  return {
    id: `m${n}`,
    chatJid: FAMILY.jid,
    sender: 'ann@s.whatsapp.net',
    senderName: 'Ann',
    content,
    timestamp: new Date(Date.UTC(2026, 0, 1, 10, 0, 0, n)).toISOString(),
    isFromMe: false,
    isBotMessage: false,
  };
}

describe('MessageLoop with a burst of messages', () => {
  let env: ReturnType<typeof tempHome>;
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

  it('routes a backlog bigger than one store page in one check, not a page per safety poll', () => {
    // A channel delivering its offline backlog: 2,500 messages at once, the trigger last.
    for (let n = 1; n < 2500; n++) store.messages.store(message(n, `chatter ${n}`));
    store.messages.store(message(2500, '@Andy what did I miss?'));
    const loop = new MessageLoop({
      store,
      config: { ...env.config, safetyPollMs: 60_000 },
      runner: { run: () => Promise.reject(new Error('not in this test')) },
      send: async () => undefined,
      setTyping: async () => undefined,
    });
    const checks: string[] = [];
    loop.queue.enqueueMessageCheck = (jid) => void checks.push(jid);

    loop.checkNewMessages();

    expect(checks).toEqual([FAMILY.jid]);
    expect(store.state.get('last_seen_seq')).toBe(String(store.messages.latestSeq()));
  });
});
