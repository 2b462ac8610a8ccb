import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveMedia } from '../../src/channels/whatsapp/media.js';
import { registerGroup } from '../../src/groups.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * The sandbox boundary, attacked from inside a real sandbox: a non-main agent plants links, a
 * FIFO and swapped folders at every place the host writes or reads, then the host is made to act
 * (snapshots, registration, IPC, run logs, skills, media). Nothing outside the agent's own folders
 * may change, and the host must keep answering.
 */
describe.each(['docker', 'bwrap'] as const)('the sandbox boundary holds (%s)', (runtime) => {
  let host: E2eHost;
  let victim: string;
  const victimFiles = () =>
    Object.fromEntries(fs.readdirSync(victim).map((f) => [f, fs.readFileSync(path.join(victim, f), 'utf8')]));
  const original = { 'policy.json': '{"keep":true}', 'victim.txt': 'host file' };
  const work = { jid: 'local:work', name: 'work', folder: 'work', requiresTrigger: false };

  beforeAll(async () => {
    host = await startE2eHost({ runtime, script: scenarioScript });
    victim = path.join(host.home, 'victim');
    fs.mkdirSync(victim);
    for (const [name, text] of Object.entries(original)) fs.writeFileSync(path.join(victim, name), text);
    expect(registerGroup(host.app.store, host.app.config, work).ok).toBe(true);
    host.app.ipc.syncWatchers();
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('plants links, a FIFO and swapped folders; the host acts on none of them', async () => {
    const plant = [
      // Snapshots: the host-to-agent part is read-only, so no link can sit where they are written.
      `ln -s ${victim}/victim.txt /workspace/inbox/current_tasks.json.tmp 2>/dev/null || echo inbox-ro`,
      `ln -s ${victim}/victim.txt /workspace/ipc/current_tasks.json.tmp`,
      `rm -rf /workspace/inbox/input 2>/dev/null || echo input-ro`,
      // The memory file: a dangling link the host must not create through.
      `rm -f /workspace/group/CLAUDE.md && ln -s ${victim}/created.md /workspace/group/CLAUDE.md`,
      // IPC folders and run logs swapped for links to a host folder full of *.json.
      `rm -rf /workspace/ipc/tasks && ln -s ${victim} /workspace/ipc/tasks`,
      `rm -rf /workspace/group/logs && ln -s ${victim} /workspace/group/logs`,
      `rm -rf /workspace/group/media && ln -s ${victim} /workspace/group/media`,
      // Skills are copied into the session dir before every run.
      `rm -rf $HOME/.claude/skills && ln -s ${victim} $HOME/.claude/skills`,
      // A FIFO where the host reads: it must never block the host's only thread.
      `mkfifo /workspace/ipc/messages/1-fifo.json`,
      `echo planted`,
    ].join('; ');
    await host.post('local:work', `RUN: ${plant}`);
    const answer = await host.reply('local:work', (t) => t.startsWith('RESULT:'));
    expect(answer).toContain('inbox-ro');
    expect(answer).toContain('input-ro');
    expect(answer).toContain('planted');

    // The host acts: snapshots, a registration (memory file), IPC scans, a follow-up.
    host.app.snapshots.tasks();
    host.app.snapshots.groups();
    expect(registerGroup(host.app.store, host.app.config, work).ok).toBe(true);
    host.app.ipc.syncWatchers();
    await host.post('local:work', 'SEND: still answering');
    await host.reply('local:work', (t) => t === 'still answering');
    const errors = path.join(host.home, 'data', 'ipc', 'errors');
    await expect
      .poll(() =>
        fs.readdirSync(errors).some((f) => f.startsWith('work-messages-') && f.endsWith('1-fifo.json')),
      )
      .toBe(true);

    // The sandbox closes (run log), then a new one starts (skills copied, input cleared).
    await expect
      .poll(() => host.app.queue.isActive('local:work'), { timeout: 30_000, interval: 200 })
      .toBe(false);
    await host.post('local:work', 'RUN: ls $HOME/.claude/skills && ls /workspace/ipc');
    const second = await host.reply('local:work', (t) => t.startsWith('RESULT:') && t.includes('browser'));
    expect(second).toContain('messages');

    // An attachment arrives for the group.
    const saved = await saveMedia({
      ipcDir: host.app.config.ipcDir,
      tmpDir: path.join(host.home, 'data', 'tmp'),
      folder: 'work',
      message: { key: { id: 'IMG1', remoteJid: 'x@g.us' } } as never,
      media: { kind: 'image', mimetype: 'image/png', fileName: undefined, fileLength: undefined },
      timeMs: 1000,
      sock: {} as never,
      download: async () => Buffer.from('png'),
      maxBytes: 1024,
      timeoutMs: 5000,
    });
    expect(saved).toMatchObject({ ok: true, containerPath: '/workspace/inbox/media/1000-IMG1.png' });

    expect(victimFiles()).toEqual(original);
    const groupDir = path.join(host.home, 'groups', 'work');
    expect(fs.lstatSync(path.join(groupDir, 'CLAUDE.md')).isSymbolicLink()).toBe(true);
    expect(fs.lstatSync(path.join(groupDir, 'logs')).isDirectory()).toBe(true);
    expect(fs.readdirSync(path.join(groupDir, 'logs')).some((f) => f.endsWith('.log'))).toBe(true);
    const snapshot = path.join(host.home, 'data', 'ipc', 'work', 'to-agent', 'current_tasks.json');
    expect(fs.lstatSync(snapshot).isFile()).toBe(true);
  });
});
