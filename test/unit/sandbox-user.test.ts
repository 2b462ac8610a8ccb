import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  collectChecks,
  sandboxLimitsCheck,
  sandboxUidCheck,
  systemAccountLookup,
} from '../../src/cli/doctor.js';
import { ConfigError, DEFAULT_SANDBOX_UID, loadConfig } from '../../src/config.js';
import { sandboxAccountFiles, sandboxUser } from '../../src/sandbox/runtime.js';
import { makeTempDir } from './sandbox-helpers.js';

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function configWith(env: Record<string, string> = {}, dotEnv = '') {
  const home = makeTempDir('nanoclaw-uid-');
  temps.push(home);
  if (dotEnv) fs.writeFileSync(path.join(home, '.env'), dotEnv);
  return loadConfig({ NANOCLAW_HOME: home, NANOCLAW_CONFIG_DIR: path.join(home, 'config'), ...env });
}

/** The first account in /etc/passwd other than root: some uid that certainly belongs to someone. */
function someExistingAccount(): { name: string; uid: number } {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid && Number(uid) > 0) return { name, uid: Number(uid) };
  }
  throw new Error('/etc/passwd lists no account besides root');
}

describe('SANDBOX_UID setting', () => {
  it('defaults to a uid outside every range accounts are made from', () => {
    expect(DEFAULT_SANDBOX_UID).toBe(61000);
    expect(configWith().sandboxUid).toBe(61000);
  });

  it('comes from the environment or from .env, the environment winning', () => {
    expect(configWith({}, 'SANDBOX_UID=62000\n').sandboxUid).toBe(62000);
    expect(configWith({ SANDBOX_UID: '63000' }, 'SANDBOX_UID=62000\n').sandboxUid).toBe(63000);
  });

  it.each([
    ['abc', /SANDBOX_UID must be a whole number/],
    ['-5', /SANDBOX_UID must be a whole number/],
    ['0', /SANDBOX_UID must be at least 1/],
    ['2147483648', /SANDBOX_UID must be at most 2147483647/],
  ])('refuses SANDBOX_UID=%s with an error naming the setting', (value, message) => {
    expect(() => configWith({ SANDBOX_UID: value })).toThrow(ConfigError);
    expect(() => configWith({ SANDBOX_UID: value })).toThrow(message);
  });

  it('is who sandboxes run as under a root host; otherwise they keep the host user', () => {
    const config = configWith({ SANDBOX_UID: '62500' });
    const expected =
      process.getuid?.() === 0
        ? { uid: 62500, gid: 62500 }
        : { uid: process.getuid!(), gid: process.getgid!() };
    expect(sandboxUser(config)).toEqual(expected);
  });

  it('gives the sandbox uid an account named node, home /home/node, and nothing of the host', () => {
    const files = sandboxAccountFiles({ uid: 61000, gid: 61000 });
    expect(files.passwd).toContain('node:x:61000:61000:node:/home/node:/bin/sh\n');
    expect(files.group).toContain('node:x:61000:\n');
    expect(files.passwd.split('\n').filter(Boolean)).toHaveLength(3); // root, node, nobody
  });
});

describe('doctor: the sandbox user', () => {
  const fake =
    (taken: Record<string, string>): typeof systemAccountLookup =>
    (db, id) =>
      taken[`${db}:${id}`] ?? null;

  it('passes for the default uid on this machine (no account has it)', () => {
    const check = sandboxUidCheck(configWith());
    expect(check).toMatchObject({ ok: true, detail: 'sandboxes run as uid/gid 61000, which no account has' });
  });

  it('fails for a uid a real account has, naming it and the exact fix', () => {
    const account = someExistingAccount();
    const config = configWith({ SANDBOX_UID: String(account.uid) });
    const check = sandboxUidCheck(config, systemAccountLookup);
    expect(check.ok).toBe(false);
    expect(check.warnOnly).toBeUndefined();
    expect(check.detail).toContain(account.name);
    expect(check.fix).toContain(`set SANDBOX_UID in ${config.envFile}`);
  });

  it('counts a group with that id too', () => {
    const check = sandboxUidCheck(configWith(), fake({ 'group:61000': 'builders', 'passwd:61001': 'alice' }));
    expect(check.ok).toBe(false);
    expect(check.detail).toBe('sandboxes run as uid/gid 61000, which belongs to builders');
    expect(check.fix).toContain('an id no user or group has');
  });

  it('does not apply when the host is not root: sandboxes run as the host user', async () => {
    const checks = await collectChecks(configWith(), { platform: 'linux', isRoot: false });
    expect(checks.find((c) => c.name === 'sandbox user')).toBeUndefined();
  });
});

describe('doctor: bwrap sandbox limits', () => {
  it('reports the limits when cgroups give them', () => {
    const check = sandboxLimitsCheck({ version: 'v1', bases: { pids: '/a', memory: '/b' }, missing: [] });
    expect(check).toMatchObject({ ok: true });
    expect(check.detail).toBe('pids and memory limits through cgroup v1');
  });

  it('warns which limits are missing and why, and names the fix', () => {
    const support = {
      version: null,
      bases: {},
      missing: ['pids', 'memory'] as Array<'pids' | 'memory'>,
      reason: 'no cgroup v2 unified hierarchy; cgroup v1 pids is not writable (EACCES)',
    };
    const asUser = sandboxLimitsCheck(support);
    expect(asUser).toMatchObject({ ok: false, warnOnly: true });
    expect(asUser.detail).toBe(
      'bwrap sandboxes run without pids and memory limits (no cgroup v2 unified hierarchy; cgroup v1 pids is not writable (EACCES))',
    );
    expect(asUser.fix).toMatch(/run nanoclaw as root with cgroup v2.*or use Docker/);
    expect(asUser.fix).toMatch(/systemd\.unified_cgroup_hierarchy=1.*use Docker/);
  });

  it('is part of doctor when bwrap is the runtime, next to the sandbox user check', async () => {
    const config = configWith({ CONTAINER_RUNTIME: 'bwrap' });
    const checks = await collectChecks(config, { platform: 'linux', isRoot: true });
    expect(checks.find((c) => c.name === 'sandbox limits')).toBeDefined();
    expect(checks.find((c) => c.name === 'sandbox user')?.ok).toBe(true);
  });
});
