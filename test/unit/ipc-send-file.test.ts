import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_FILE_BYTES, safeFileName } from '../../src/contract/ipc.js';
import { handleMessageIpc, type MessageIpcDeps } from '../../src/ipc/message-handler.js';
import type { RegisteredGroup } from '../../src/types.js';

/** send_file on the host: the file is copied out of the agent-writable group folder, never followed. */
describe('send_file requests', () => {
  let root: string;
  let groupDir: string;
  let filesDir: string;
  let sent: Array<[string, string]>;
  let deps: MessageIpcDeps;
  const group = { jid: 'local:work', folder: 'work', isMain: false } as RegisteredGroup;
  const request = (p: string, extra: object = {}) =>
    handleMessageIpc(
      { type: 'file', chatJid: 'local:work', path: p, requestId: 'r1', ...extra },
      group,
      deps,
    );
  const stored = () =>
    fs.existsSync(path.join(filesDir, 'work')) ? fs.readdirSync(path.join(filesDir, 'work')) : [];

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-sendfile-'));
    groupDir = path.join(root, 'groups', 'work');
    filesDir = path.join(root, 'data', 'files');
    fs.mkdirSync(path.join(groupDir, 'out'), { recursive: true });
    fs.writeFileSync(path.join(root, 'host-secret.txt'), 'host secret');
    sent = [];
    deps = {
      groupByJid: () => undefined,
      send: (jid, text) => {
        sent.push([jid, text]);
        return { ok: true };
      },
      files: { groupsDir: path.join(root, 'groups'), filesDir },
    };
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('copies a regular file into data/files/<folder>/ and sends a marker with the caption', async () => {
    fs.writeFileSync(path.join(groupDir, 'out', 'chart.png'), 'PNGDATA');
    expect(await request('out/chart.png', { caption: 'look' })).toEqual({ ok: true, result: 'File sent.' });
    const [name] = stored();
    expect(name).toMatch(/^\d+-[0-9a-f]{8}-chart\.png$/);
    expect(fs.readFileSync(path.join(filesDir, 'work', name!), 'utf8')).toBe('PNGDATA');
    expect(sent).toEqual([['local:work', `look\n[file: work/${name}]`]]);
  });

  it('refuses a symlink at the path that points at a host file', async () => {
    fs.symlinkSync(path.join(root, 'host-secret.txt'), path.join(groupDir, 'report.txt'));
    const result = await request('report.txt');
    expect(result).toEqual({ ok: false, error: 'file refused: a symbolic link' });
    expect(stored()).toEqual([]);
    expect(sent).toEqual([]);
  });

  it('refuses a symlinked folder on the way', async () => {
    fs.symlinkSync(root, path.join(groupDir, 'up'));
    const result = await request('up/host-secret.txt');
    expect(result).toMatchObject({ ok: false, error: expect.stringContaining('file refused') });
    expect(sent).toEqual([]);
  });

  it('refuses a FIFO without blocking, a missing file, .. and absolute paths', async () => {
    execFileSync('mkfifo', [path.join(groupDir, 'pipe')]);
    expect(await request('pipe')).toEqual({ ok: false, error: 'file refused: not a regular file' });
    expect(await request('nope.txt')).toEqual({ ok: false, error: 'no such file: nope.txt' });
    expect(await request('out/missing/x.txt')).toEqual({
      ok: false,
      error: 'no such file: out/missing/x.txt',
    });
    for (const bad of ['../host-secret.txt', '/etc/passwd', 'out//x', './x'])
      expect(await request(bad)).toMatchObject({
        ok: false,
        error: 'file refused: not a single path segment',
      });
    expect(sent).toEqual([]);
  });

  it('refuses a file over the cap', async () => {
    const big = path.join(groupDir, 'big.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, MAX_FILE_BYTES + 1);
    expect(await request('big.bin')).toMatchObject({
      ok: false,
      error: expect.stringContaining('the limit is'),
    });
  });

  it('keeps a non-main group to its own chat', async () => {
    fs.writeFileSync(path.join(groupDir, 'a.txt'), 'a');
    const other = { type: 'file', chatJid: 'local:other', path: 'a.txt' };
    expect(await handleMessageIpc(other, group, deps)).toMatchObject({ ok: false });
    expect(await request('a.txt')).toMatchObject({ ok: true });
  });

  it('names are made safe: [A-Za-z0-9._-], at most 100, no leading dot', () => {
    expect(safeFileName('../../etc/pass wd')).toBe('_.._etc_pass_wd');
    expect(safeFileName('.hidden')).toBe('hidden');
    expect(safeFileName('ünï cödé.pdf')).toBe('_n__c_d_.pdf');
    expect(safeFileName(`${'a'.repeat(200)}.png`)).toHaveLength(100);
    expect(safeFileName('...', 'upload.png')).toBe('upload.png');
  });
});
