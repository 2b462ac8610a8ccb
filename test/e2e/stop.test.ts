import { afterEach, describe, expect, it } from 'vitest';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

// The Stop button (and `nanoclaw stop`): the chat's running sandbox ends, the chat says so, and
// the stopped run is not retried.
describe('stopping a chat’s running agent (bwrap)', () => {
  let host: E2eHost | undefined;
  afterEach(async () => host?.stop());

  it('ends the sandbox mid-command, posts one notice and starts nothing again', async () => {
    let spawns = 0;
    host = await startE2eHost({
      runtime: 'bwrap',
      script: scenarioScript,
      wrapRuntime: (runtime: SandboxRuntime) =>
        Object.assign(Object.create(runtime) as SandboxRuntime, {
          spawn: (spec: Parameters<SandboxRuntime['spawn']>[0]) => (spawns++, runtime.spawn(spec)),
        }),
    });
    const { app } = host;
    await host.post('local:main', 'RUN: sleep 60');
    await expect.poll(() => host!.mock.requests.length, { timeout: 30_000 }).toBeGreaterThan(0);
    // The page's status panel lists the chat's running sandbox, by group name.
    const status = async () =>
      (await fetch(`http://127.0.0.1:${host!.local.port}/api/status`, {
        headers: { authorization: `Bearer ${host!.local.token}` },
      }).then((res) => res.json())) as { running: string[] };
    const name = app.store.groups.byJid('local:main')!.name;
    expect((await status()).running).toEqual([name]);
    expect(await app.control.stopChat('local:main')).toBe(true);
    await host.reply('local:main', (t) => t === 'Stopped.');
    await expect.poll(() => app.queue.isActive('local:main'), { timeout: 15_000 }).toBe(false);
    await new Promise((r) => setTimeout(r, 6000)); // past the first retry's back-off
    expect(spawns).toBe(1);
    expect((await status()).running).toEqual([]);
    expect(await app.control.stopChat('local:main')).toBe(false);
  }, 90_000);
});
