import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { logger } from '../../src/logger.js';
import type { AgentOutput } from '../../src/types.js';
import { FakeRuntime, reply } from '../helpers/fake-runtime.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

/**
 * Makes a directory unwritable even for root (tests run as root, which ignores mode bits): the
 * immutable attribute where the filesystem has it, else a read-only bind mount. Returns the undo.
 */
function makeReadOnly(dir: string): () => void {
  const chattr = spawnSync('chattr', ['+i', dir], { encoding: 'utf8' });
  let undo: () => void;
  if (chattr.status === 0) undo = () => spawnSync('chattr', ['-i', dir]);
  else {
    const bind = spawnSync('mount', ['--bind', dir, dir], { encoding: 'utf8' });
    const ro = bind.status === 0 && spawnSync('mount', ['-o', 'remount,bind,ro', dir]).status === 0;
    if (!ro) {
      if (bind.status === 0) spawnSync('umount', [dir]);
      throw new Error(`cannot make ${dir} read-only: chattr: ${chattr.stderr}; mount: ${bind.stderr}`);
    }
    undo = () => spawnSync('umount', [dir]);
  }
  expect(() => fs.writeFileSync(path.join(dir, 'probe'), 'x')).toThrow();
  return undo;
}

/** The host cannot write into a group's IPC dir (read-only, or a failing disk). */
describe('failed IPC writes', () => {
  let host: E2eHost | undefined;
  const undos: Array<() => void> = [];
  const error = vi.spyOn(logger, 'error');
  const warn = vi.spyOn(logger, 'warn');

  afterEach(async () => {
    for (const undo of undos.splice(0)) undo();
    await host?.stop();
    host = undefined;
    error.mockClear();
    warn.mockClear();
  });

  it('a follow-up that cannot be piped in is logged and answered by the next run, not lost', async () => {
    let release!: () => void;
    const runner = new FakeRuntime(async (input, hooks): Promise<AgentOutput> => {
      if (runner.inputs.length === 1) {
        await reply(hooks, 'answer 1');
        // Idle-waiting for follow-ups, like a real sandbox, until the test lets it end.
        await new Promise<void>((resolve) => (release = resolve));
        return { status: 'success', result: null };
      }
      return reply(hooks, `answer 2 (${input.prompt.includes('second') ? 'saw second' : 'missed it'})`);
    });
    host = await startE2eHost({ runtime: runner });
    await host.postRaw('local:main', JSON.stringify({ text: 'first' }));
    await host.waitFor('local:main', (t) => t === 'answer 1');

    const inputDir = path.join(host.config.ipcDir, 'main', 'to-agent', 'input');
    fs.mkdirSync(inputDir, { recursive: true });
    undos.push(makeReadOnly(inputDir));
    expect((await host.postRaw('local:main', JSON.stringify({ text: 'second' }))).status).toBe(202);
    await vi.waitFor(() =>
      expect(error).toHaveBeenCalledWith(
        expect.objectContaining({
          jid: 'local:main',
          err: expect.objectContaining({ code: expect.any(String) }),
        }),
        'cannot pipe message into the running sandbox',
      ),
    );
    expect(fs.readdirSync(inputDir)).toEqual([]);

    // The host is fine and the message waits for the next run.
    release();
    await host.waitFor('local:main', (t) => t.startsWith('answer 2'));
    expect(host.assistantTexts('local:main')).toEqual(['answer 1', 'answer 2 (saw second)']);
    const rows = host.app.store.messages.history('local:main', undefined, 100);
    expect(rows.map((m) => m.content)).toEqual(['first', 'answer 1', 'second', 'answer 2 (saw second)']);
    expect(Number(host.app.store.state.get('agent_seq:local:main'))).toBe(rows[2]!.seq);
  });

  it('a `_close` that cannot be written at shutdown is logged; the host still stops', async () => {
    const runner = new FakeRuntime(async (_input, hooks): Promise<AgentOutput> => {
      await reply(hooks, 'working');
      return new Promise<AgentOutput>(() => undefined); // never ends by itself
    });
    host = await startE2eHost({ runtime: runner, tune: { shutdownGraceMs: 300 } });
    await host.postRaw('local:main', JSON.stringify({ text: 'go' }));
    await host.waitFor('local:main', (t) => t === 'working');
    const inputDir = path.join(host.config.ipcDir, 'main', 'to-agent', 'input');
    fs.mkdirSync(inputDir, { recursive: true });
    undos.push(makeReadOnly(inputDir));

    // The store closes too: the temp home is removed only after the directory is writable again.
    await expect(host.app.stop()).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledWith(
      expect.objectContaining({ jid: 'local:main' }),
      'cannot ask the sandbox to close',
    );
  });

  it('snapshots that cannot be written are logged, and runs go on', async () => {
    const runner = new FakeRuntime(async (_input, hooks) => reply(hooks, 'still answering'));
    host = await startE2eHost({ runtime: runner });
    const groupIpc = path.join(host.config.ipcDir, 'main', 'to-agent');
    undos.push(makeReadOnly(groupIpc));
    host.app.snapshots.tasks();
    host.app.snapshots.groups();
    const messages = warn.mock.calls.map((c) => c[1]);
    expect(messages).toContain('cannot write task snapshot');
    expect(messages).toContain('cannot write group snapshot');
    await host.postRaw('local:main', JSON.stringify({ text: 'hello' }));
    await host.waitFor('local:main', (t) => t === 'still answering');
  });
});
