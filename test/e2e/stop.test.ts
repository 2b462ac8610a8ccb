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
    expect(await app.control.stopChat('local:main')).toBe(true);
    await host.reply('local:main', (t) => t === 'Stopped.');
    await expect.poll(() => app.queue.isActive('local:main'), { timeout: 15_000 }).toBe(false);
    await new Promise((r) => setTimeout(r, 6000)); // past the first retry's back-off
    expect(spawns).toBe(1);
    expect(await app.control.stopChat('local:main')).toBe(false);
  }, 90_000);
});
