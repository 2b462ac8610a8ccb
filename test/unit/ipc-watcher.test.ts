import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { handleMessageIpc } from '../../src/ipc/message-handler.js';
import { IpcWatcher } from '../../src/ipc/watcher.js';
import { tempHome } from '../helpers/temp-home.js';
import { testGroup } from './sandbox-helpers.js';

const group = (folder: string, isMain = false) => testGroup(folder, { jid: `${folder}@g.us`, isMain });
const MAIN = group('main', true);
const WORK = group('work');
const FAMILY = group('family');
const GROUPS = [MAIN, WORK, FAMILY];

describe('IPC message handling', () => {
  const sent: Array<{ jid: string; text: string; sender?: string }> = [];
  const deps = {
    groupByJid: (jid: string) => GROUPS.find((g) => g.jid === jid),
    send: (jid: string, text: string, sender?: string) => {
      if (text === 'over the cap')
        return { ok: false as const, reason: 'per-run cap of 100 messages reached' };
      sent.push({ jid, text, ...(sender ? { sender } : {}) });
      return { ok: true as const };
    },
    files: { groupsDir: '/nonexistent', filesDir: '/nonexistent' },
  };
  beforeEach(() => (sent.length = 0));

  it('lets a group message its own chat, with an optional sender name', async () => {
    const result = await handleMessageIpc(
      { type: 'message', chatJid: WORK.jid, text: 'hi', sender: 'Researcher' },
      WORK,
      deps,
    );
    expect(result).toEqual({ ok: true });
    expect(sent).toEqual([{ jid: WORK.jid, text: 'hi', sender: 'Researcher' }]);
  });

  it('refuses a non-main group messaging another chat', async () => {
    const result = await handleMessageIpc({ type: 'message', chatJid: FAMILY.jid, text: 'hi' }, WORK, deps);
    expect(result.ok).toBe(false);
    expect(sent).toHaveLength(0);
  });

  it('lets main message any registered group but not unknown chats', async () => {
    expect(await handleMessageIpc({ type: 'message', chatJid: FAMILY.jid, text: 'x' }, MAIN, deps)).toEqual({
      ok: true,
    });
    expect(
      (await handleMessageIpc({ type: 'message', chatJid: 'nobody@g.us', text: 'x' }, MAIN, deps)).ok,
    ).toBe(false);
  });

  it('ignores a groupFolder claimed inside the file', async () => {
    const result = await handleMessageIpc(
      { type: 'message', chatJid: FAMILY.jid, text: 'x', groupFolder: 'family', isMain: true },
      WORK,
      deps,
    );
    expect(result.ok).toBe(false);
  });

  it('refuses a message the outbound side refuses, naming why', async () => {
    const result = await handleMessageIpc(
      { type: 'message', chatJid: WORK.jid, text: 'over the cap' },
      WORK,
      deps,
    );
    expect(result).toEqual({ ok: false, error: 'message not sent: per-run cap of 100 messages reached' });
    expect(sent).toEqual([]);
  });

  it('names the problem in a malformed file', async () => {
    const result = await handleMessageIpc({ type: 'message', chatJid: WORK.jid }, WORK, deps);
    expect(result).toEqual({ ok: false, error: expect.stringContaining('text') });
  });
});

describe('IpcWatcher', () => {
  let env: ReturnType<typeof tempHome>;
  let watcher: IpcWatcher;
  const handled: Array<{ kind: string; payload: unknown; folder: string }> = [];

  beforeEach(() => {
    env = tempHome();
    handled.length = 0;
    watcher = new IpcWatcher({
      ipcDir: env.config.ipcDir,
      pollMs: 60_000,
      groups: () => [WORK],
      handle: async (kind, payload, source) => {
        handled.push({ kind, payload, folder: source.folder });
        const p = payload as { refuse?: boolean; result?: string };
        if (p.refuse) return { ok: false, error: 'refused for the test' };
        return p.result ? { ok: true, result: p.result } : { ok: true };
      },
    });
    watcher.start();
  });
  afterEach(() => {
    watcher.stop();
    env.cleanup();
  });

  const dir = (kind: string) => path.join(env.config.ipcDir, 'work', 'from-agent', kind);
  const errors = () =>
    fs.readdirSync(path.join(env.config.ipcDir, 'errors')).filter((f) => f.endsWith('.json'));

  it('picks up a new file at once via fs.watch, takes identity from the directory, deletes it', async () => {
    fs.writeFileSync(path.join(dir('messages'), '1.json.tmp'), JSON.stringify({ type: 'message', n: 1 }));
    fs.renameSync(path.join(dir('messages'), '1.json.tmp'), path.join(dir('messages'), '1.json'));
    await vi.waitFor(() => expect(handled).toHaveLength(1), { timeout: 2000 });
    expect(handled[0]).toMatchObject({ kind: 'messages', folder: 'work' });
    await vi.waitFor(() => expect(fs.readdirSync(dir('messages'))).toEqual([]));
  });

  it('ignores half-written .tmp files', async () => {
    fs.writeFileSync(path.join(dir('tasks'), 'x.json.tmp'), '{"type":');
    await new Promise((r) => setTimeout(r, 200));
    expect(handled).toHaveLength(0);
  });

  it('quarantines malformed JSON, oversized and refused files without crashing', async () => {
    fs.writeFileSync(path.join(dir('tasks'), 'a.json'), '{not json');
    fs.writeFileSync(path.join(dir('tasks'), 'b.json'), JSON.stringify({ refuse: true }));
    fs.writeFileSync(path.join(dir('tasks'), 'c.json'), JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }));
    await vi.waitFor(() => expect(errors()).toHaveLength(3), { timeout: 3000 });
    expect(fs.readdirSync(dir('tasks'))).toEqual([]);
    const reasons = fs
      .readdirSync(path.join(env.config.ipcDir, 'errors'))
      .filter((f) => f.endsWith('.reason.txt'))
      .map((f) => fs.readFileSync(path.join(env.config.ipcDir, 'errors', f), 'utf8'));
    expect(reasons.join()).toMatch(/unreadable JSON/);
    expect(reasons.join()).toMatch(/refused for the test/);
    expect(reasons.join()).toMatch(/limit/);
  });

  it('handles files oldest first', async () => {
    watcher.stop();
    for (const n of [3, 1, 2])
      fs.writeFileSync(path.join(dir('messages'), `${n}.json`), JSON.stringify({ n }));
    watcher.start();
    await vi.waitFor(() => expect(handled).toHaveLength(3));
    expect(handled.map((h) => (h.payload as { n: number }).n)).toEqual([1, 2, 3]);
  });

  it('judges each file by the group as it is now, not as it was when its folder was first watched', async () => {
    watcher.stop();
    let groups = [{ ...WORK, isMain: true }];
    const seen: boolean[] = [];
    watcher = new IpcWatcher({
      ipcDir: env.config.ipcDir,
      pollMs: 60_000,
      groups: () => groups,
      handle: async (_kind, _payload, source) => (seen.push(source.isMain), { ok: true }),
    });
    watcher.start();
    groups = [WORK];
    fs.writeFileSync(path.join(dir('tasks'), '1.json'), '{}');
    await vi.waitFor(() => expect(seen).toEqual([false]), { timeout: 2000 });
    groups = [];
    fs.writeFileSync(path.join(dir('tasks'), '2.json'), '{}');
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([false]);
  });

  describe('answers in to-agent/responses/', () => {
    const responsesDir = () => path.join(env.config.ipcDir, 'work', 'to-agent', 'responses');
    const answer = (id: string) =>
      JSON.parse(fs.readFileSync(path.join(responsesDir(), `${id}.json`), 'utf8'));

    it('answers each request with an id, done or refused (and still quarantines the refused)', async () => {
      fs.writeFileSync(
        path.join(dir('tasks'), '1-a.json'),
        JSON.stringify({ requestId: 'req-ok', result: 'done it' }),
      );
      fs.writeFileSync(
        path.join(dir('tasks'), '2-b.json'),
        JSON.stringify({ requestId: 'req-no', refuse: true }),
      );
      fs.writeFileSync(path.join(dir('messages'), '3-c.json'), JSON.stringify({ requestId: 'req-plain' }));
      await vi.waitFor(() => expect(fs.readdirSync(responsesDir()).sort()).toHaveLength(3), {
        timeout: 3000,
      });
      expect(answer('req-ok')).toEqual({ ok: true, result: 'done it' });
      expect(answer('req-no')).toEqual({ ok: false, error: 'refused for the test' });
      expect(answer('req-plain')).toEqual({ ok: true });
      await vi.waitFor(() => expect(errors()).toHaveLength(1));
      // Answers are whole files, world-readable for the sandbox user, in a host-owned folder.
      const stat = fs.statSync(path.join(responsesDir(), 'req-ok.json'));
      expect(stat.mode & 0o777).toBe(0o644);
    });

    it('never answers under an unsafe id, and never through a link planted in the inbox', async () => {
      const outside = path.join(env.home, 'outside');
      fs.mkdirSync(outside);
      fs.mkdirSync(path.join(env.config.ipcDir, 'work', 'to-agent'), { recursive: true });
      fs.symlinkSync(outside, responsesDir());
      for (const [n, requestId] of ['../evil', '.hidden', 'a/b', 'x'.repeat(65), 42, 'good'].entries())
        fs.writeFileSync(path.join(dir('tasks'), `${n}-r.json`), JSON.stringify({ requestId }));
      await vi.waitFor(() => expect(handled).toHaveLength(6), { timeout: 3000 });
      await vi.waitFor(() => expect(fs.lstatSync(responsesDir()).isDirectory()).toBe(true));
      expect(fs.readdirSync(responsesDir())).toEqual(['good.json']);
      expect(fs.readdirSync(outside)).toEqual([]);
      expect(fs.existsSync(path.join(env.config.ipcDir, 'work', 'evil.json'))).toBe(false);
    });

    it('prunes answers older than a few minutes when it writes a new one', async () => {
      fs.mkdirSync(responsesDir(), { recursive: true });
      const old = path.join(responsesDir(), 'old.json');
      fs.writeFileSync(old, '{"ok":true}');
      const past = new Date(Date.now() - 10 * 60_000);
      fs.utimesSync(old, past, past);
      fs.writeFileSync(path.join(responsesDir(), 'recent.json'), '{"ok":true}');
      fs.writeFileSync(path.join(dir('tasks'), '1-n.json'), JSON.stringify({ requestId: 'new' }));
      await vi.waitFor(() =>
        expect(fs.readdirSync(responsesDir()).sort()).toEqual(['new.json', 'recent.json']),
      );
    });
  });
});
