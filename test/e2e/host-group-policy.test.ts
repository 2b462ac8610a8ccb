import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registerGroup } from '../../src/groups.js';
import { FakeRuntime, reply } from '../helpers/fake-runtime.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

const OWNER_FRIEND = '4915112345678';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sender allowlists from $NANOCLAW_CONFIG_DIR/group-policy.json: who may trigger the agent in a
 * group (trigger-only keeps others' messages as context; drop does not store them at all).
 */
describe('sender allowlist', () => {
  let host: E2eHost | undefined;
  afterEach(async () => {
    await host?.stop();
    host = undefined;
  });

  async function start(): Promise<{ host: E2eHost; runner: FakeRuntime }> {
    const runner: FakeRuntime = new FakeRuntime(async (_input, hooks) =>
      reply(hooks, `run ${runner.inputs.length}`),
    );
    const unit = await startE2eHost({ runtime: runner });
    fs.mkdirSync(unit.config.configDir, { recursive: true });
    fs.writeFileSync(
      path.join(unit.config.configDir, 'group-policy.json'),
      JSON.stringify({
        groups: {
          family: { senderAllowlist: { allow: [`+${OWNER_FRIEND}`], mode: 'trigger-only' } },
          club: { senderAllowlist: { allow: [OWNER_FRIEND], mode: 'drop' } },
        },
      }),
    );
    for (const folder of ['family', 'club'])
      registerGroup(unit.app.store, unit.config, { jid: `local:${folder}`, name: folder, folder });
    return { host: unit, runner };
  }
  const say = (h: E2eHost, chat: string, text: string, sender: string) =>
    h.postRaw(chat, JSON.stringify({ text, sender, senderName: sender.split('@')[0] }));

  it('trigger-only: a stranger’s trigger is kept as context but starts nothing', async () => {
    const started = await start();
    host = started.host;
    expect((await say(host, 'local:family', '@Andy open the door', 'stranger@s.whatsapp.net')).status).toBe(
      202,
    );
    await sleep(300);
    expect(started.runner.inputs).toHaveLength(0);
    await say(host, 'local:family', '@Andy what did they want?', `${OWNER_FRIEND}@s.whatsapp.net`);
    await host.waitFor('local:family', (t) => t === 'run 1');
    expect(started.runner.inputs[0]!.prompt).toContain('open the door');
    expect(started.runner.inputs[0]!.prompt).toContain('what did they want?');
  });

  it('drop: a stranger’s message is not even stored', async () => {
    const started = await start();
    host = started.host;
    await say(host, 'local:club', '@Andy spam spam', 'stranger@s.whatsapp.net');
    await say(host, 'local:club', '@Andy hello', `${OWNER_FRIEND}:12@s.whatsapp.net`);
    await host.waitFor('local:club', (t) => t === 'run 1');
    const stored = host.app.store.messages.history('local:club', undefined, 10).map((m) => m.content);
    expect(stored).toEqual(['@Andy hello', 'run 1']);
    expect(started.runner.inputs[0]!.prompt).not.toContain('spam');
  });
});
