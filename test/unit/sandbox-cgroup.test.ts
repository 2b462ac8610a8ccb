import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, detectCgroupSupport, SandboxCgroup } from '../../src/sandbox/runtimes/cgroup.js';
import { makeTempDir } from './sandbox-helpers.js';

/**
 * A fake /sys/fs/cgroup in a temp dir: cgroupfs files are plain files here, so these tests see
 * which files are written with what; test/e2e/runtime-bwrap.test.ts proves it on the real one.
 */
const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = makeTempDir('nanoclaw-cgroupfs-');
  temps.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

const read = (file: string) => fs.readFileSync(file, 'utf8');

describe('cgroup support detection', () => {
  it('uses cgroup v2 when the unified hierarchy offers pids and memory, enabling them for children', () => {
    const root = tree({
      'cgroup.controllers': 'cpuset cpu io memory pids\n',
      'cgroup.subtree_control': 'cpu\n',
      'nanoclaw/cgroup.subtree_control': '',
    });
    const support = detectCgroupSupport({ root });
    expect(support).toEqual({
      version: 'v2',
      bases: { pids: path.join(root, 'nanoclaw'), memory: path.join(root, 'nanoclaw') },
      missing: [],
    });
    expect(read(path.join(root, 'cgroup.subtree_control'))).toBe('+pids +memory');
    expect(read(path.join(root, 'nanoclaw/cgroup.subtree_control'))).toBe('+pids +memory');
  });

  it('falls back to the v1 pids and memory hierarchies of a hybrid layout', () => {
    const root = tree({
      'unified/cgroup.controllers': '',
      'pids/tasks': '',
      'pids/nanoclaw/cgroup.procs': '',
      'memory/tasks': '',
      'memory/nanoclaw/cgroup.procs': '',
    });
    const support = detectCgroupSupport({ root });
    expect(support).toEqual({
      version: 'v1',
      bases: { pids: path.join(root, 'pids/nanoclaw'), memory: path.join(root, 'memory/nanoclaw') },
      missing: [],
    });
  });

  it('names each missing limit and why, and still lets sandboxes run', () => {
    const root = tree({
      'cgroup.controllers': 'cpu io\n',
      'pids/tasks': '',
      'pids/nanoclaw/cgroup.procs': '',
    });
    const support = detectCgroupSupport({ root });
    expect(support.version).toBe('v1');
    expect(support.missing).toEqual(['memory']);
    expect(support.reason).toBe('cgroup v2 does not offer pids and memory; no cgroup v1 memory hierarchy');
    const none = detectCgroupSupport({ root: path.join(root, 'absent') });
    expect(none).toMatchObject({ version: null, missing: ['pids', 'memory'] });
    expect(SandboxCgroup.create(none, 'x', DEFAULT_LIMITS)).toBeNull();
  });
});

describe('a sandbox cgroup', () => {
  it('v2: one cgroup with pids.max and memory.max; the pid goes to cgroup.procs', () => {
    const base = tree({});
    const cgroup = SandboxCgroup.create(
      { version: 'v2', bases: { pids: base, memory: base }, missing: [] },
      'nanoclaw-family-1',
      { pidsMax: 512, memoryBytes: 2 * 1024 ** 3 },
    );
    expect(cgroup?.dirs).toEqual([path.join(base, 'nanoclaw-family-1')]);
    expect(read(path.join(base, 'nanoclaw-family-1/pids.max'))).toBe('512');
    expect(read(path.join(base, 'nanoclaw-family-1/memory.max'))).toBe('2147483648');
    cgroup?.attach(4242);
    expect(read(path.join(base, 'nanoclaw-family-1/cgroup.procs'))).toBe('4242');
  });

  it('v1: one cgroup per hierarchy; a taken name is never shared (fail closed)', () => {
    const root = tree({ 'pids/x/y': '', 'memory/x/y': '' });
    const support = {
      version: 'v1' as const,
      bases: { pids: path.join(root, 'pids'), memory: path.join(root, 'memory') },
      missing: [],
    };
    const cgroup = SandboxCgroup.create(support, 'sb', { pidsMax: 64, memoryBytes: 1024 });
    expect(cgroup?.dirs).toEqual([path.join(root, 'pids/sb'), path.join(root, 'memory/sb')]);
    expect(read(path.join(root, 'pids/sb/pids.max'))).toBe('64');
    expect(read(path.join(root, 'memory/sb/memory.limit_in_bytes'))).toBe('1024');
    fs.rmSync(path.join(root, 'pids/sb'), { recursive: true });
    fs.rmSync(path.join(root, 'memory/sb'), { recursive: true });
    fs.mkdirSync(path.join(root, 'memory', 'sb'));
    expect(() => SandboxCgroup.create(support, 'sb', DEFAULT_LIMITS)).toThrow(/EEXIST/);
  });

  it('keeps a sandbox name from escaping its base directory', () => {
    const base = tree({});
    for (const name of ['../../etc', '..', '']) {
      const cgroup = SandboxCgroup.create(
        { version: 'v2', bases: { pids: base, memory: base }, missing: [] },
        name,
        DEFAULT_LIMITS,
      );
      expect(path.dirname(cgroup!.dirs[0]!), name).toBe(base);
    }
  });
});
