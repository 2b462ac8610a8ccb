import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  loadMountAllowlist,
  validateAdditionalMounts,
  type MountAllowlist,
} from '../../src/sandbox/mount-allowlist.js';
import type { AdditionalMount } from '../../src/types.js';
import { makeTempDir, testConfig } from './sandbox-helpers.js';

describe('mount allowlist', () => {
  let tmp: string;
  let projects: string;
  let readOnlyRoot: string;
  let fakeUserHome: string;
  let allowlist: MountAllowlist;
  const savedHome = process.env.HOME;

  beforeAll(() => {
    tmp = makeTempDir();
    // HOME drives `~` expansion and the user's credential dirs; point it at a fake one.
    fakeUserHome = path.join(tmp, 'user');
    process.env.HOME = fakeUserHome;
    projects = path.join(fakeUserHome, 'projects');
    readOnlyRoot = path.join(tmp, 'reference');
    for (const dir of [
      path.join(projects, 'webapp'),
      path.join(projects, 'notes', 'deep'),
      path.join(projects, 'credentials'),
      path.join(projects, 'vault-secrets-vault'),
      path.join(fakeUserHome, '.ssh'),
      path.join(readOnlyRoot, 'docs'),
      path.join(tmp, 'outside'),
    ])
      fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(fakeUserHome, '.ssh', 'id_ed25519'), 'PRIVATE');
    // Innocent names, dangerous targets: only realpath reveals them.
    fs.symlinkSync(path.join(fakeUserHome, '.ssh'), path.join(projects, 'innocent'));
    fs.symlinkSync(path.join(tmp, 'outside'), path.join(projects, 'escape'));
  });

  afterAll(() => {
    process.env.HOME = savedHome;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    allowlist = {
      allowedRoots: [
        { path: '~/projects', allowReadWrite: true },
        { path: readOnlyRoot, allowReadWrite: false },
      ],
      blockedPatterns: ['secrets-vault'],
      nonMainReadOnly: true,
    };
  });

  const config = () => testConfig(path.join(tmp, 'home'), { configDir: path.join(tmp, 'cfg') });
  const check = (mounts: AdditionalMount[], isMain = true, list: MountAllowlist | null = allowlist) =>
    validateAdditionalMounts(mounts, list, { isMain, config: config() });
  const reasonFor = (mount: AdditionalMount, isMain = true) => {
    const result = check([mount], isMain);
    expect(result.allowed).toEqual([]);
    return result.rejected[0]?.reason;
  };

  it('allows a path under an allowed root, read-only by default, named after its basename', () => {
    const result = check([{ hostPath: '~/projects/webapp' }]);
    expect(result.rejected).toEqual([]);
    expect(result.allowed).toEqual([
      { hostPath: path.join(projects, 'webapp'), containerPath: '/workspace/extra/webapp', readonly: true },
    ]);
  });

  it('refuses a symlink inside an allowed root that resolves to ~/.ssh', () => {
    expect(reasonFor({ hostPath: path.join(projects, 'innocent') })).toMatch(/\.ssh/);
  });

  it('refuses a symlink inside an allowed root that leads outside every root', () => {
    expect(reasonFor({ hostPath: path.join(projects, 'escape') })).toMatch(/not under an allowed root/);
  });

  it('refuses always-blocked components and the configured blocked patterns', () => {
    expect(reasonFor({ hostPath: path.join(projects, 'credentials') })).toMatch(/credentials/);
    expect(reasonFor({ hostPath: path.join(projects, 'vault-secrets-vault') })).toMatch(/secrets-vault/);
  });

  it('refuses a mount that would contain a credential directory of the user', () => {
    allowlist.allowedRoots.push({ path: '~', allowReadWrite: false });
    expect(reasonFor({ hostPath: '~' })).toMatch(/protected/);
  });

  it('refuses the config dir and the state dirs, inside or around them', () => {
    const cfg = config();
    for (const dir of [cfg.configDir, cfg.storeDir, cfg.dataDir, path.join(cfg.groupsDir, 'x')])
      fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(cfg.envFile, 'ANTHROPIC_API_KEY=k');
    allowlist.allowedRoots.push({ path: tmp, allowReadWrite: true });
    for (const hostPath of [
      cfg.configDir,
      cfg.storeDir,
      cfg.dataDir,
      path.join(cfg.groupsDir, 'x'),
      cfg.home,
    ])
      expect(reasonFor({ hostPath }), hostPath).toMatch(/protected/);
    expect(reasonFor({ hostPath: cfg.envFile })).toMatch(/\.env/);
  });

  it('grants read-write only where the root allows it and never to non-main when nonMainReadOnly', () => {
    const rw = { hostPath: '~/projects/webapp', readonly: false };
    expect(check([rw], true).allowed[0]?.readonly).toBe(false);
    expect(check([rw], false).allowed[0]?.readonly).toBe(true);
    allowlist.nonMainReadOnly = false;
    expect(check([rw], false).allowed[0]?.readonly).toBe(false);
    const docs = { hostPath: path.join(readOnlyRoot, 'docs'), readonly: false };
    expect(check([docs], true).allowed[0]?.readonly).toBe(true);
  });

  it('accepts relative container paths and refuses .., absolute and odd ones', () => {
    const base = { hostPath: '~/projects/notes' };
    expect(check([{ ...base, containerPath: 'my/notes' }]).allowed[0]?.containerPath).toBe(
      '/workspace/extra/my/notes',
    );
    expect(reasonFor({ ...base, containerPath: '../escape' })).toMatch(/\.\./);
    expect(reasonFor({ ...base, containerPath: 'a/../../b' })).toMatch(/\.\./);
    expect(reasonFor({ ...base, containerPath: '/etc' })).toMatch(/relative/);
    expect(reasonFor({ ...base, containerPath: 'a:b' })).toMatch(/letters/);
    expect(reasonFor({ ...base, containerPath: '' })).toMatch(/empty/);
  });

  it('refuses relative host paths and missing paths', () => {
    expect(reasonFor({ hostPath: 'projects/webapp' })).toMatch(/absolute/);
    expect(reasonFor({ hostPath: '~/projects/nope' })).toMatch(/does not exist/);
  });

  it('refuses every mount when there is no allowlist', () => {
    const result = check([{ hostPath: '~/projects/webapp' }], true, null);
    expect(result.allowed).toEqual([]);
    expect(result.rejected[0]?.reason).toMatch(/no valid mount allowlist/);
  });

  describe('loadMountAllowlist', () => {
    const write = (name: string, text: string) => {
      const dir = path.join(tmp, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'mount-allowlist.json'), text);
      return dir;
    };

    it('reads a valid file, defaulting blockedPatterns and nonMainReadOnly', () => {
      const dir = write(
        'cfg-valid',
        JSON.stringify({ allowedRoots: [{ path: '~/projects', allowReadWrite: true }] }),
      );
      expect(loadMountAllowlist(dir)).toEqual({
        allowedRoots: [{ path: '~/projects', allowReadWrite: true }],
        blockedPatterns: [],
        nonMainReadOnly: true,
      });
    });

    it('returns null for a missing file, broken JSON or a wrong shape', () => {
      expect(loadMountAllowlist(path.join(tmp, 'no-such-dir'))).toBeNull();
      expect(loadMountAllowlist(write('cfg-broken', '{ "allowedRoots": ['))).toBeNull();
      expect(
        loadMountAllowlist(write('cfg-shape', JSON.stringify({ allowedRoots: [{ path: 1 }] }))),
      ).toBeNull();
    });
  });
});
