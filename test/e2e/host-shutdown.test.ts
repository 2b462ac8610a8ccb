import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isAgentTurn,
  lastUserText,
  startMockAnthropic,
  type MockAnthropic,
} from '../fixtures/mock-anthropic.js';
import {
  ensureHostBuild,
  killHost,
  logLines,
  makeHostHome,
  startHostProcess,
  type HostProcess,
} from '../helpers/host-process.js';

/** Echoes the newest message; a "HOLD" message gets no answer until the test releases it. */
function heldModel() {
  let release!: () => void;
  const held = {
    calls: [] as string[],
    prompts: [] as string[],
    released: new Promise<void>((resolve) => (release = resolve)),
    release,
  };
  const script = async ({ body }: { body: unknown }) => {
    if (!isAgentTurn(body)) return { text: 'ok' };
    const text = lastUserText(body);
    const bodies = [...text.matchAll(/<message [^>]*>([\s\S]*?)<\/message>/g)].map((m) => m[1]!);
    const last = (bodies.at(-1) ?? text).trim();
    held.calls.push(last);
    held.prompts.push(text);
    if (last.startsWith('HOLD')) await held.released;
    return { text: `ECHO: ${last}` };
  };
  return { held, script };
}

const containersOf = (instance: string) =>
  spawnSync(
    'docker',
    ['ps', '-a', '--filter', `label=nanoclaw.instance=${instance}`, '--format', '{{.Names}}'],
    {
      encoding: 'utf8',
    },
  )
    .stdout.split('\n')
    .filter(Boolean);

/** Exit codes of finished sandbox runs, from the host's run logs. */
function exitCodes(home: string): string[] {
  const dir = path.join(home, 'groups', 'main', 'logs');
  return fs
    .readdirSync(dir)
    .sort()
    .map((name) => /^Exit code: (\S+)/m.exec(fs.readFileSync(path.join(dir, name), 'utf8'))?.[1] ?? '?');
}

/**
 * SPEC §4 shutdown: on SIGTERM the host stops taking work, writes `_close` to active sandboxes,
 * waits up to 10 s, disconnects its channels and exits 0. The real host runs as a child process.
 */
describe('graceful shutdown on SIGTERM (docker)', () => {
  let mock: MockAnthropic;
  let home: string;
  let host: HostProcess | undefined;
  let instance: string;
  const model = heldModel();
  const env = { CONTAINER_RUNTIME: 'docker', IDLE_TIMEOUT: '60000' };

  beforeAll(async () => {
    ensureHostBuild();
    mock = await startMockAnthropic({ script: model.script });
    home = makeHostHome(mock.url);
    instance = crypto.createHash('sha256').update(home).digest('hex').slice(0, 12);
  });
  afterAll(async () => {
    model.held.release();
    await killHost(host);
    await mock?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('closes an idle sandbox with `_close` and exits 0 at once', async () => {
    host = await startHostProcess(home, env);
    await host.post('local:main', 'hello');
    await host.waitForReply('local:main', (t) => t === 'ECHO: hello');
    expect(containersOf(instance)).toHaveLength(1);

    const started = Date.now();
    host.proc.kill('SIGTERM');
    expect(await host.exited).toEqual({ code: 0, signal: null });
    const tookMs = Date.now() - started;
    expect(tookMs).toBeLessThan(10_000);
    // The sandbox finished on its own (exit 0), not stopped by the runtime (143/137).
    expect(exitCodes(home)).toEqual(['0']);
    expect(logLines(host.log(), 'asking running sandboxes to finish')).toHaveLength(1);
    expect(logLines(host.log(), 'stopping sandbox')).toHaveLength(0);
    expect(containersOf(instance)).toEqual([]);
    await expect(fetch(`http://127.0.0.1:${host.port}/`)).rejects.toThrow();
    console.info(`shutdown with an idle sandbox: ${tookMs} ms`);
  });

  it('waits 10 s for a busy sandbox, stops it, exits 0; its message is answered after restart', async () => {
    host = await startHostProcess(home, env);
    await host.post('local:main', 'HOLD the long question');
    await expect
      .poll(() => model.held.calls.includes('HOLD the long question'), { timeout: 60_000 })
      .toBe(true);

    const started = Date.now();
    host.proc.kill('SIGTERM');
    // Stop taking work: the channel still accepts (and stores) a message during the grace period,
    // but no sandbox starts for it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await host.post('local:main', 'sent while stopping')).status).toBe(202);
    expect(await host.exited).toEqual({ code: 0, signal: null });
    const tookMs = Date.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(10_000);
    expect(tookMs).toBeLessThan(30_000);
    expect(model.held.calls).not.toContain('sent while stopping');
    expect(
      logLines(host.log(), 'sandboxes still running after the grace period; stopping them'),
    ).toHaveLength(1);
    expect(containersOf(instance)).toEqual([]);
    // No failure notice for a run the host itself ended.
    const firstLog = host.log();
    expect(logLines(firstLog, 'run failed; messages will be retried')).toHaveLength(1);

    model.held.release();
    host = await startHostProcess(home, env);
    await host.waitForReply('local:main', (t) => t.includes('sent while stopping'));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // Both messages were handled by the new host's one run, and answered once.
    expect(await host.assistantTexts('local:main')).toEqual(['ECHO: hello', 'ECHO: sent while stopping']);
    const lastPrompt = model.held.prompts.at(-1)!;
    expect(lastPrompt).toContain('HOLD the long question');
    expect(lastPrompt).toContain('sent while stopping');
    host.proc.kill('SIGTERM');
    expect(await host.exited).toEqual({ code: 0, signal: null });
    console.info(`shutdown with a busy sandbox: ${tookMs} ms`);
  });
});
