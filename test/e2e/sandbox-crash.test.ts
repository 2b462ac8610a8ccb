import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAgentTurn, lastUserText } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/** Kills every process of the sandbox (the agent-runner, the SDK, the shell), once per marker file. */
const crashOnce = (marker: string) =>
  `RUN: test -e ${marker} || { touch ${marker}; kill -9 -1; }; echo survived-${marker}`;

/**
 * The agent process dies in the middle of a run: the model asks Bash to `kill -9 -1`, which takes
 * down everything in the sandbox (the runtime's init then exits). The host retries; the cursor
 * rule decides what is run again.
 */
describe('sandbox crash mid-run (docker)', () => {
  let host: E2eHost;
  const rows = (chat: string) => host.app.store.messages.history(chat, undefined, 100);
  /** Exit codes of the group's finished sandbox runs, from the host's run logs. */
  const exitCodes = (folder: string) => {
    const dir = path.join(host.home, 'groups', folder, 'logs');
    return fs
      .readdirSync(dir)
      .sort()
      .map((name) => /^Exit code: (\S+)/m.exec(fs.readFileSync(path.join(dir, name), 'utf8'))?.[1]);
  };

  beforeAll(async () => {
    host = await startE2eHost({
      runtime: 'docker',
      script: scenarioScript,
      // Long enough that a follow-up reaches the sandbox that answered the first message.
      env: { IDLE_TIMEOUT: '60000' },
      tune: { retryBaseMs: 1_000, maxRetries: 2 },
      groups: ['once', 'always', 'piped'],
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('retries a run that crashed before any output; the answer comes once, no notice', async () => {
    await host.post('local:once', crashOnce('a'));
    await host.waitFor('local:once', (t) => t.startsWith('RESULT:'), 90_000);
    expect(host.assistantTexts('local:once')).toEqual(['RESULT: survived-a']);
    // The crashed run (killed: 128 + 9) is over; the retry that answered is idling for follow-ups.
    expect(exitCodes('once')).toEqual(['137']);
    const cursor = Number(host.app.store.state.get('agent_seq:local:once'));
    expect(cursor).toBe(rows('local:once').find((m) => !m.isBotMessage)!.seq);
  });

  it('tells the person after the second crash and once more when it gives up; the message stays unprocessed', async () => {
    await host.post('local:always', 'RUN: kill -9 -1');
    await host.waitFor('local:always', (t) => t.startsWith('Sorry'), 90_000);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(host.assistantTexts('local:always')).toEqual([
      'I couldn’t answer yet: my sandbox stopped unexpectedly. I’m retrying and will answer when it works.',
      'Sorry, I still couldn’t answer: my sandbox stopped unexpectedly. I’ll try again when you send another message.',
    ]);
    expect(host.app.queue.isActive('local:always')).toBe(false);
    expect(exitCodes('always')).toEqual(['137', '137', '137']);
    // Rolled back: the next message in this chat brings the unanswered one along.
    const question = rows('local:always').find((m) => !m.isBotMessage)!;
    expect(Number(host.app.store.state.get('agent_seq:local:always') ?? 0)).toBeLessThan(question.seq);
    expect(host.app.store.state.get('agent_run:local:always')).toBe('');
  });

  it('after output was sent, a crash does not repeat the answered message but retries the follow-up', async () => {
    await host.post('local:piped', 'first question');
    await host.waitFor('local:piped', (t) => t === 'ECHO: first question');
    expect(host.app.queue.isActive('local:piped')).toBe(true);
    // Piped into the sandbox that answered: it crashes there, after output had reached the chat.
    await host.post('local:piped', crashOnce('c'));
    await host.waitFor('local:piped', (t) => t.startsWith('RESULT:'), 90_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(host.assistantTexts('local:piped')).toEqual(['ECHO: first question', 'RESULT: survived-c']);
    expect(exitCodes('piped')).toEqual(['137']);
    const [first, second] = rows('local:piped').filter((m) => !m.isBotMessage);
    // The model was prompted with the answered message once, and with the follow-up twice: in
    // the sandbox that crashed, then alone in the retry.
    const prompts = host.mock.requests
      .filter((r) => isAgentTurn(r.body))
      .map((r) => lastUserText(r.body))
      .filter((text) => text.includes('<message'));
    expect(prompts.filter((p) => p.includes('first question'))).toHaveLength(1);
    expect(prompts.filter((p) => p.includes('survived-c'))).toHaveLength(2);
    expect(Number(host.app.store.state.get('agent_seq:local:piped'))).toBe(second!.seq);
    expect(second!.seq).toBeGreaterThan(first!.seq);
  });
});
