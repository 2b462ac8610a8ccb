import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_IPC_FILE_BYTES } from '../../src/contract/ipc.js';
import { FakeRuntime, reply } from '../helpers/fake-runtime.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

const PER_DIR = 5_000;

/** Ten kinds of bad file, cycled: broken JSON, wrong shapes, forged targets, odd file types. */
function badFile(kind: 'messages' | 'tasks', i: number): string | Buffer | null {
  switch (i % 10) {
    case 0:
      return '{"type":"message", "chatJid": ';
    case 1:
      return Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0xc3, 0x28]);
    case 2:
      return '';
    case 3:
      return JSON.stringify({ type: kind === 'messages' ? 'message' : 'schedule_task' });
    case 4:
      return JSON.stringify({ type: 'no_such_type', text: 'x' });
    case 5:
      return kind === 'messages'
        ? JSON.stringify({ type: 'message', chatJid: 'local:main', text: `forged ${i}` })
        : JSON.stringify({ type: 'cancel_task', taskId: 'task-of-main' });
    case 6:
      return '['.repeat(20_000) + ']'.repeat(20_000);
    case 7:
      return JSON.stringify({ type: 'message', chatJid: 42, text: ['not', 'text'] });
    case 8:
      return kind === 'tasks'
        ? JSON.stringify({ type: 'register_group', jid: 'x@g.us', name: 'x', folder: '../x', trigger: '@A' })
        : '"just a string"';
    default:
      return null; // a directory, a symlink or a FIFO with a .json name
  }
}

describe('10,000 malformed IPC files dropped at once', () => {
  let host: E2eHost | undefined;
  afterEach(async () => {
    await host?.stop();
    host = undefined;
  });

  it('quarantines all with reasons, keeps answering, stays bounded in memory and time', async () => {
    const runner = new FakeRuntime(async (input, hooks) =>
      reply(hooks, `answer to ${input.prompt.length} chars`),
    );
    host = await startE2eHost({ runtime: runner, groups: ['work'] });
    const ipc = host.config.ipcDir;
    const staging = path.join(host.home, 'staging');
    // Everything is written aside first, then renamed in: the watcher meets the whole flood at once.
    const planned: Array<{ from: string; to: string }> = [];
    for (const kind of ['messages', 'tasks'] as const) {
      fs.mkdirSync(path.join(staging, kind), { recursive: true });
      for (let i = 0; i < PER_DIR; i++) {
        const name = `${String(i).padStart(6, '0')}-bad.json`;
        const from = path.join(staging, kind, name);
        const content = badFile(kind, i);
        if (content !== null) fs.writeFileSync(from, content);
        else if (i % 30 === 9) fs.mkdirSync(from);
        else if (i % 30 === 19) fs.symlinkSync('/etc/passwd', from);
        else execFileSync('mkfifo', [from]);
        planned.push({ from, to: path.join(ipc, 'work', 'from-agent', kind, name) });
      }
    }
    // Three files over the size cap: never read, quarantined by their size.
    for (const n of [1, 2, 3]) {
      const name = `oversize-${n}.json`;
      fs.writeFileSync(path.join(staging, name), `"${'x'.repeat(MAX_IPC_FILE_BYTES)}"`);
      planned.push({
        from: path.join(staging, name),
        to: path.join(ipc, 'work', 'from-agent', 'messages', name),
      });
    }

    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 25);
    const stalls = monitorEventLoopDelay({ resolution: 10 });
    stalls.enable();
    const started = Date.now();
    for (const { from, to } of planned) fs.renameSync(from, to);

    // The person keeps getting answers while the flood is handled.
    const posted = Date.now();
    expect((await host.postRaw('local:main', JSON.stringify({ text: 'are you there?' }))).status).toBe(202);
    const postMs = Date.now() - posted;
    await host.waitFor('local:main', (t) => t.startsWith('answer to'), 30_000);
    const answerMs = Date.now() - posted;

    const errorsDir = path.join(ipc, 'errors');
    const total = 2 * PER_DIR + 3;
    const isLeft = (kind: string) => fs.readdirSync(path.join(ipc, 'work', 'from-agent', kind)).length;
    await expect
      .poll(() => isLeft('messages') + isLeft('tasks'), { timeout: 120_000, interval: 250 })
      .toBe(0);
    const tookMs = Date.now() - started;
    clearInterval(sampler);
    stalls.disable();

    const quarantined = fs.readdirSync(errorsDir);
    const moved = quarantined.filter((n) => !n.endsWith('.reason.txt'));
    expect(moved).toHaveLength(total);
    expect(moved.every((n) => n.startsWith('work-'))).toBe(true);
    expect(quarantined.filter((n) => n.endsWith('.reason.txt'))).toHaveLength(total);
    const reasonOf = (name: string, kind = 'messages') => {
      const file = moved.find((n) => n.startsWith(`work-${kind}-`) && n.endsWith(`-${name}`))!;
      return fs.readFileSync(path.join(errorsDir, `${file}.reason.txt`), 'utf8');
    };
    expect(reasonOf('000000-bad.json')).toMatch(/^unreadable JSON/);
    expect(reasonOf('000003-bad.json')).toMatch(/invalid message file: chatJid: .*text:/);
    expect(reasonOf('000005-bad.json')).toMatch(/may only message its own chat/);
    expect(reasonOf('000008-bad.json', 'tasks')).toMatch(/only the main group may register groups/);
    expect(reasonOf('000005-bad.json', 'tasks')).toMatch(/task 'task-of-main' not found/);
    expect(reasonOf('000009-bad.json')).toMatch(/not a regular file/);
    expect(reasonOf('oversize-1.json')).toMatch(/the limit is 1048576/);
    // A symlink is refused unread: never followed, its target untouched, no link kept.
    const link = moved.find((n) => n.startsWith('work-tasks-') && n.endsWith('000019-bad.json'))!;
    expect(reasonOf('000019-bad.json', 'tasks')).toMatch(/a symbolic link/);
    expect(fs.lstatSync(path.join(errorsDir, link)).isFile()).toBe(true);
    expect(fs.statSync(path.join(errorsDir, link)).size).toBe(0);

    // Nothing reached a chat or the task table; the person got exactly their answer.
    expect(host.assistantTexts('local:main')).toEqual([expect.stringMatching(/^answer to/)]);
    expect(host.assistantTexts('local:work')).toEqual([]);
    expect(
      host.app.store.groups
        .all()
        .map((g) => g.folder)
        .sort(),
    ).toEqual(['main', 'work']);
    expect(fs.existsSync(path.join(host.home, 'x'))).toBe(false);

    const heapGrowthMb = (heapPeak - heapBefore) / 1024 / 1024;
    const maxStallMs = stalls.max / 1e6;
    expect(heapGrowthMb).toBeLessThan(150);
    expect(maxStallMs).toBeLessThan(1_000);
    expect(postMs).toBeLessThan(2_000);
    expect(tookMs).toBeLessThan(120_000);
    console.info(
      `ipc flood: ${total} files in ${tookMs} ms; heap +${heapGrowthMb.toFixed(1)} MB peak; ` +
        `longest event-loop stall ${maxStallMs.toFixed(0)} ms; POST ${postMs} ms; answer ${answerMs} ms`,
    );
  }, 180_000);
});
