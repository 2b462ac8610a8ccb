import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerGroup } from '../../src/groups.js';
import type { RecordedRequest } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

type Block = {
  type?: string;
  id?: string;
  name?: string;
  tool_use_id?: string;
  content?: unknown;
  is_error?: boolean;
};
type Message = { role: string; content: unknown };

/**
 * The tool_result of the newest call of `tool`, as sent in the model request right after that call
 * (the SDK's own record of what the tool answered the agent).
 */
function resultOfLastCall(requests: RecordedRequest[], tool: string) {
  for (const { body } of [...requests].reverse()) {
    const messages = ((body as { messages?: Message[] })?.messages ?? []).map((m) =>
      Array.isArray(m.content) ? (m.content as Block[]) : [],
    );
    const call = messages.flat().findLast((b) => b.type === 'tool_use' && b.name === tool);
    const result = call && messages.flat().find((b) => b.type === 'tool_result' && b.tool_use_id === call.id);
    if (!result) continue;
    const text = Array.isArray(result.content)
      ? (result.content as Array<{ text?: string }>).map((c) => c.text ?? '').join('\n')
      : String(result.content);
    return { text, isError: result.is_error === true };
  }
}

/**
 * The agent hears the host's decision on what it asked for: a refusal (the active-task cap, a group
 * that is not main) comes back to the model as a tool error naming why, not as "ok".
 */
describe.each(['docker', 'bwrap'] as const)('the host answers the agent’s requests (%s)', (runtime) => {
  let host: E2eHost;
  const tool = async (chat: string, name: string, input: object) => {
    const before = host.assistantTexts(chat).length;
    await host.post(chat, `TOOL: mcp__nanoclaw__${name} ${JSON.stringify(input)}`);
    const answered = () =>
      host
        .assistantTexts(chat)
        .slice(before)
        .some((t) => t.startsWith('RESULT:'));
    await expect.poll(answered, { timeout: 90_000, interval: 100 }).toBe(true);
    return resultOfLastCall(host.mock.requests, `mcp__nanoclaw__${name}`);
  };

  beforeAll(async () => {
    host = await startE2eHost({
      runtime,
      script: scenarioScript,
      groups: ['work'],
      // Long enough that a demoted group's sandbox is still running when it asks.
      env: { IDLE_TIMEOUT: '60000' },
      prepare: (home) => {
        fs.mkdirSync(path.join(home, 'config'), { recursive: true });
        fs.writeFileSync(
          path.join(home, 'config', 'group-policy.json'),
          JSON.stringify({ groups: { work: { maxActiveTasks: 1 } } }),
        );
      },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('schedule_task: the host’s confirmation, then its refusal over the active-task cap', async () => {
    const daily = { prompt: 'daily digest', schedule_type: 'cron', schedule_value: '0 9 * * *' };
    const first = await tool('local:work', 'schedule_task', daily);
    expect(first).toEqual({
      text: expect.stringMatching(/^scheduled task task-\d+-[0-9a-f]+, next run /),
      isError: false,
    });
    expect(host.app.store.tasks.all().filter((t) => t.groupFolder === 'work')).toHaveLength(1);

    const second = await tool('local:work', 'schedule_task', { ...daily, prompt: 'one too many' });
    expect(second).toEqual({
      text: "The host refused: group 'work': group 'work' already has 1 active tasks (limit 1); cancel or pause one",
      isError: true,
    });
    expect(host.app.store.tasks.all().filter((t) => t.groupFolder === 'work')).toHaveLength(1);
    // Quarantined as before, and answered.
    const errors = fs.readdirSync(path.join(host.home, 'data', 'ipc', 'errors'));
    expect(errors.some((f) => f.startsWith('work-tasks-') && f.endsWith('.reason.txt'))).toBe(true);
  }, 120_000);

  it('register_group from a group that is no longer main: a tool error naming the reason', async () => {
    const store = host.app.store;
    const ops = { jid: 'local:ops', name: 'ops', folder: 'ops', requiresTrigger: false, isMain: true };
    expect(registerGroup(store, host.app.config, ops).ok).toBe(true);
    host.app.ipc.syncWatchers();
    // Started as main, so its agent holds the register_group tool ...
    await host.post('local:ops', 'hello');
    await host.reply('local:ops', (t) => t === 'ECHO: hello');
    // ... and loses main while its sandbox runs: only the host can know.
    store.groups.upsert({ ...store.groups.byJid('local:ops')!, isMain: false });
    expect(host.app.queue.isActive('local:ops')).toBe(true);

    const club = { jid: 'local:club', name: 'Club', folder: 'club', trigger: '@Andy' };
    expect(await tool('local:ops', 'register_group', club)).toEqual({
      text: "The host refused: group 'ops': only the main group may register groups",
      isError: true,
    });
    expect(store.groups.byJid('local:club')).toBeUndefined();
  }, 120_000);
});
