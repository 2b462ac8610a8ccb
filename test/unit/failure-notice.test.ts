import { afterEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/db/store.js';
import { explainFailure, FailureNotices } from '../../src/failure-notice.js';
import { logger } from '../../src/logger.js';
import { Outbound } from '../../src/outbound.js';
import type { Channel } from '../../src/types.js';
import { tempHome } from '../helpers/temp-home.js';

describe('failure notices', () => {
  it.each([
    ['No model credentials configured: add ANTHROPIC_API_KEY', 'permanent', /no valid credentials/],
    [
      'API Error: 429 Daily token budget of 1000 tokens for this group is spent',
      'permanent',
      /budget is spent/,
    ],
    [
      'Sandbox exited with code 125: docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
      'permanent',
      /container runtime is not available/,
    ],
    [
      'Could not start the sandbox: Error: No such image: nanoclaw-agent:latest',
      'permanent',
      /agent image is missing/,
    ],
    ['API Error: Repeated 529 Overloaded errors. The API is at capacity', 'upstream', /overloaded right now/],
    [
      'API Error: 500 Internal server error. This is a server-side issue',
      'upstream',
      /isn’t answering properly/,
    ],
    [
      'API Error: 504 The model API did not answer in time (model proxy timeout).',
      'upstream',
      /isn’t answering properly/,
    ],
    ['Sandbox exited with code 137: [agent-runner] started', 'other', /my sandbox stopped unexpectedly/],
    ['something odd', 'other', /^Sorry, I couldn’t answer \(something odd\)/],
  ])('%s → %s', (error, kind, message) => {
    const explained = explainFailure(error);
    expect(explained.kind).toBe(kind);
    expect(explained.message).toMatch(message);
    // Plain words: no socket paths, stack traces or raw JSON reach the chat for known causes.
    if (kind !== 'other') expect(explained.message).not.toMatch(/unix:|\{|at .*\.js/);
  });

  it('tells permanent and upstream causes at the first failure, others when the queue gives up; once per streak', async () => {
    const sent: string[] = [];
    const notices = new FailureNotices(async (_jid, text) => sent.push(text));
    await notices.onRunFailed('a', 'API Error: 529 Overloaded');
    await notices.onRunFailed('a', 'API Error: 529 Overloaded');
    await notices.onGaveUp('a');
    expect(sent).toHaveLength(1);
    await notices.onRunFailed('b', 'Sandbox exited with code 137');
    expect(sent).toHaveLength(1);
    await notices.onGaveUp('b');
    expect(sent).toHaveLength(2);
    notices.onRunSucceeded('a');
    await notices.onRunFailed('a', 'API Error: 500 boom');
    expect(sent).toHaveLength(3);
    notices.mute();
    await notices.onRunFailed('c', 'API Error: 529 Overloaded');
    await notices.onGaveUp('c');
    expect(sent).toHaveLength(3);
  });
});

describe('outbound rate limit', () => {
  let env: ReturnType<typeof tempHome>;
  let store: Store;
  afterEach(() => {
    store.close();
    env.cleanup();
  });

  it('drops what is over the limit, stores none of it, and logs a flood in a few lines', async () => {
    env = tempHome();
    store = openStore(env.config.dbPath);
    const delivered: string[] = [];
    const channel = {
      name: 'local',
      ownsJid: () => true,
      sendMessage: async (_jid: string, text: string) => void delivered.push(text),
    } as unknown as Channel;
    let allowed = 3;
    const outbound = new Outbound({
      store,
      channels: () => [channel],
      assistantName: 'Andy',
      allowSend: () => allowed-- > 0,
    });
    const warn = vi.spyOn(logger, 'warn');
    for (let i = 0; i < 253; i++) await outbound.send('local:main', `m${i}`);
    expect(delivered).toEqual(['m0', 'm1', 'm2']);
    expect(store.messages.history('local:main', undefined, 1000).map((m) => m.content)).toEqual([
      'm0',
      'm1',
      'm2',
    ]);
    const drops = warn.mock.calls.filter((c) => c[1] === 'outbound message dropped by rate limit');
    expect(drops.map((c) => (c[0] as { dropped: number }).dropped)).toEqual([1, 100, 200]);
    // Failure notices are never rate limited.
    expect(await outbound.send('local:main', 'notice', undefined, { unlimited: true })).toBe(true);
    allowed = 1;
    await outbound.send('local:main', 'later');
    expect(warn).toHaveBeenCalledWith(
      { jid: 'local:main', dropped: 250 },
      'rate limit lifted; messages were dropped meanwhile',
    );
    warn.mockRestore();
  });
});
