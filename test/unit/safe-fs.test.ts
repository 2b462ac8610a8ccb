import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SafeDir, UnsafeEntryError, withSafeDir } from '../../src/safe-fs.js';
import { clearInput, writeClose, writeInput, writeSnapshot } from '../../src/ipc/to-agent.js';

/** Everything here plays the agent: it plants links, FIFOs and swapped folders, then the host acts. */
describe('safe-fs: the host never follows what an agent planted', () => {
  let root: string;
  let victim: string;
  let dir: SafeDir;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-safefs-'));
    victim = path.join(root, 'victim');
    fs.mkdirSync(victim);
    fs.writeFileSync(path.join(victim, 'secret'), 'host secret');
    fs.mkdirSync(path.join(root, 'agent'));
    dir = SafeDir.open(path.join(root, 'agent'));
  });
  afterEach(() => {
    dir.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  const agent = (...p: string[]) => path.join(root, 'agent', ...p);

  it('reads regular files only: a link, a FIFO or a folder is refused, and a FIFO never blocks', () => {
    fs.writeFileSync(agent('ok.json'), '{"a":1}');
    fs.symlinkSync(path.join(victim, 'secret'), agent('link.json'));
    execFileSync('mkfifo', [agent('fifo.json')]);
    fs.mkdirSync(agent('dir.json'));
    expect(dir.readFile('ok.json', 100)?.toString()).toBe('{"a":1}');
    expect(() => dir.readFile('link.json', 100)).toThrow(/symbolic link/);
    expect(() => dir.readFile('fifo.json', 100)).toThrow(/not a regular file/);
    expect(() => dir.readFile('dir.json', 100)).toThrow(/not a regular file/);
    expect(dir.readFile('missing.json', 100)).toBeUndefined();
  });

  it('refuses a file over the cap without reading it', () => {
    fs.writeFileSync(agent('big.json'), 'x'.repeat(101));
    expect(() => dir.readFile('big.json', 100)).toThrow(/101 bytes; the limit is 100/);
  });

  it('never creates through a dangling link: the target stays absent', () => {
    fs.symlinkSync(path.join(victim, 'created'), agent('CLAUDE.md'));
    expect(dir.createFile('CLAUDE.md', 'memory')).toBe(false);
    expect(fs.existsSync(path.join(victim, 'created'))).toBe(false);
  });

  it('replaces a planted link atomically instead of writing through it', () => {
    fs.symlinkSync(path.join(victim, 'secret'), agent('current_tasks.json'));
    dir.writeAtomic('current_tasks.json', '[]');
    expect(fs.readFileSync(path.join(victim, 'secret'), 'utf8')).toBe('host secret');
    expect(fs.lstatSync(agent('current_tasks.json')).isFile()).toBe(true);
    expect(fs.readdirSync(agent())).toEqual(['current_tasks.json']);
  });

  it('keeps acting on the folder it opened after the agent swaps the path for a link', () => {
    fs.renameSync(agent(), path.join(root, 'moved'));
    fs.symlinkSync(victim, agent());
    dir.createFile('new.json', 'x');
    dir.remove('new.json');
    dir.createFile('left.json', 'y');
    expect(fs.readdirSync(victim).sort()).toEqual(['secret']);
    expect(fs.readdirSync(path.join(root, 'moved'))).toEqual(['left.json']);
  });

  it('refuses a link in place of a folder, or replaces it when asked, never following it', () => {
    fs.symlinkSync(victim, agent('messages'));
    expect(() => dir.subdir('messages')).toThrow(UnsafeEntryError);
    dir.subdir('messages', { replace: true }).close();
    expect(fs.lstatSync(agent('messages')).isDirectory()).toBe(true);
    expect(fs.readdirSync(victim)).toEqual(['secret']);
  });

  it('removes a folder with links inside without touching their targets', () => {
    fs.mkdirSync(agent('skills', 'x'), { recursive: true });
    fs.symlinkSync(victim, agent('skills', 'x', 'link'));
    fs.symlinkSync(path.join(victim, 'secret'), agent('skills', 'file'));
    dir.remove('skills');
    expect(fs.existsSync(agent('skills'))).toBe(false);
    expect(fs.readFileSync(path.join(victim, 'secret'), 'utf8')).toBe('host secret');
  });

  it('hands a tree over without following links (lchown only)', () => {
    fs.mkdirSync(agent('sub'));
    fs.symlinkSync(victim, agent('sub', 'link'));
    dir.chownTree(61001, 61001);
    expect(fs.lstatSync(agent('sub')).uid).toBe(61001);
    expect(fs.lstatSync(agent('sub', 'link')).uid).toBe(61001);
    expect(fs.statSync(victim).uid).toBe(process.getuid!());
    expect(fs.statSync(path.join(victim, 'secret')).uid).toBe(process.getuid!());
  });

  it('refuses names that are not one path segment', () => {
    for (const name of ['../victim', 'a/b', '.', '..', ''])
      expect(() => dir.lstat(name), name).toThrow(/single path segment/);
  });

  it('withSafeDir refuses a link on the way down', () => {
    fs.symlinkSync(victim, agent('linked'));
    expect(() => withSafeDir(root, ['agent', 'linked'], {}, () => 'reached')).toThrow(UnsafeEntryError);
  });
});

describe('the host-to-agent part of IPC', () => {
  let ipcDir: string;
  beforeEach(() => (ipcDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-toagent-'))));
  afterEach(() => fs.rmSync(ipcDir, { recursive: true, force: true }));
  const input = () => path.join(ipcDir, 'team', 'to-agent', 'input');

  it('pipes follow-ups and `_close` in, and clears them before the next sandbox', () => {
    const name = writeInput({ ipcDir }, 'team', 'hello');
    writeClose({ ipcDir }, 'team');
    writeClose({ ipcDir }, 'team');
    expect(fs.readdirSync(input()).sort()).toEqual([name, '_close'].sort());
    expect(JSON.parse(fs.readFileSync(path.join(input(), name), 'utf8'))).toEqual({
      type: 'message',
      text: 'hello',
    });
    clearInput({ ipcDir }, 'team');
    expect(fs.readdirSync(input())).toEqual([]);
  });

  it('writes snapshots whole, next to input/', () => {
    writeSnapshot({ ipcDir }, 'team', 'current_tasks.json', [{ id: 't1' }]);
    writeSnapshot({ ipcDir }, 'team', 'current_tasks.json', []);
    const file = path.join(ipcDir, 'team', 'to-agent', 'current_tasks.json');
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual([]);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['current_tasks.json']);
  });
});
