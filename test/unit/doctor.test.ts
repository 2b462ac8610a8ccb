import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectChecks, unreachableDirs, type Check } from '../../src/cli/doctor.js';
import { DEFAULT_SANDBOX_UID, loadConfig, PROJECT_ROOT } from '../../src/config.js';
import { openStore } from '../../src/db/store.js';

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A reachable temp NANOCLAW_HOME with its own config dir. */
function home(env: Record<string, string> = {}) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-doctor-')));
  fs.chmodSync(dir, 0o755);
  temps.push(dir);
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir);
  const config = loadConfig({ NANOCLAW_HOME: dir, NANOCLAW_CONFIG_DIR: configDir, ...env });
  return { dir, configDir, config };
}

/** A directory holding nothing but `node`: a machine where no sandbox runtime is installed. */
function nodeOnlyPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-path-'));
  temps.push(dir);
  fs.symlinkSync(fs.realpathSync(process.execPath), path.join(dir, 'node'));
  return dir;
}

async function withPath<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = dir;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

const byName = (checks: Check[], name: string) => {
  const check = checks.find((c) => c.name === name);
  if (!check) throw new Error(`no '${name}' check in ${JSON.stringify(checks.map((c) => c.name))}`);
  return check;
};

function expectEveryFailureHasAFix(checks: Check[]) {
  for (const c of checks.filter((c) => !c.ok)) expect(c.fix, `fix for ${c.name}`).toMatch(/\S/);
}

describe('nanoclaw doctor on a clean machine without Docker', () => {
  it('names every missing runtime and the exact install commands (the real CLI, PATH = node only)', () => {
    const { dir, configDir } = home();
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'doctor'], {
      cwd: PROJECT_ROOT,
      env: {
        PATH: nodeOnlyPath(),
        HOME: dir,
        NANOCLAW_HOME: dir,
        NANOCLAW_CONFIG_DIR: configDir,
        LOG_LEVEL: 'silent',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stdout).toContain(
      '[FAIL] runtime: no usable sandbox runtime (docker: docker is not installed; podman: podman is not installed; bwrap: bubblewrap is not installed)',
    );
    const fix = result.stdout.split('\n').find((l) => l.includes('fix: install one sandbox runtime'));
    expect(fix).toContain('`sudo apt-get install docker.io && sudo systemctl enable --now docker`');
    expect(fix).toContain('`sudo apt-get install bubblewrap`');
    expect(fix).toContain('then run `nanoclaw build`');
    expect(result.stdout).toMatch(/\[FAIL\] credentials: no model credentials/);
    expect(result.stdout).toContain('check(s) failed.');
  });

  it('names Apple container and Docker Desktop on macOS', async () => {
    const { config } = home();
    const checks = await withPath(nodeOnlyPath(), () => collectChecks(config, { platform: 'darwin' }));
    const runtime = byName(checks, 'runtime');
    expect(runtime.ok).toBe(false);
    expect(runtime.detail).toMatch(
      /apple: Apple container is not installed; docker: docker is not installed/,
    );
    expect(runtime.fix).toContain('https://github.com/apple/container/releases');
    expect(runtime.fix).toContain('`brew install --cask docker`');
    expectEveryFailureHasAFix(checks);
  });

  it('uses the configured runtime’s own hint when CONTAINER_RUNTIME names one that is missing', async () => {
    const { config } = home({ CONTAINER_RUNTIME: 'podman' });
    const checks = await withPath(nodeOnlyPath(), () => collectChecks(config));
    const runtime = byName(checks, 'runtime');
    expect(runtime.ok).toBe(false);
    expect(runtime.detail).toBe('CONTAINER_RUNTIME=podman: podman is not installed');
    expect(runtime.fix).toMatch(/apt-get install podman.*unset CONTAINER_RUNTIME/);
  });
});

describe('nanoclaw doctor with a working runtime', () => {
  it('fails on a Node older than 22 and says how to get a current one', async () => {
    const { config } = home({ CONTAINER_RUNTIME: 'docker' });
    const old = byName(await collectChecks(config, { nodeVersion: '20.19.0' }), 'node');
    expect(old).toMatchObject({ ok: false, detail: 'Node 20.19.0' });
    expect(old.fix).toMatch(/Node\.js 22 or 24.*nvm install 24/);
    expect(byName(await collectChecks(config, { nodeVersion: '24.1.0' }), 'node').ok).toBe(true);
  });

  it('finds docker, the agent image and the credentials', async () => {
    const { dir, config } = home({ CONTAINER_RUNTIME: 'docker' });
    fs.writeFileSync(path.join(dir, '.env'), 'ANTHROPIC_API_KEY=sk-ant-doctor-test\n', { mode: 0o600 });
    const checks = await collectChecks(config);
    expect(byName(checks, 'runtime')).toMatchObject({ ok: true, detail: 'docker is usable' });
    expect(byName(checks, 'image')).toMatchObject({ ok: true, detail: 'nanoclaw-agent:latest present' });
    expect(byName(checks, 'credentials').ok).toBe(true);
    expect(byName(checks, 'credentials').detail).not.toContain('readable by other users');
    expect(checks.some((c) => c.name === 'permissions')).toBe(false); // docker needs no host path access
  });

  it('says how to build a missing image and warns about a world-readable .env', async () => {
    const { dir, config } = home({
      CONTAINER_RUNTIME: 'docker',
      CONTAINER_IMAGE: 'nanoclaw-doctor-absent:none',
    });
    fs.writeFileSync(path.join(dir, '.env'), 'ANTHROPIC_API_KEY=sk-ant-doctor-test\n', { mode: 0o644 });
    fs.chmodSync(path.join(dir, '.env'), 0o644);
    const checks = await collectChecks(config);
    expect(byName(checks, 'image')).toMatchObject({
      ok: false,
      detail: 'nanoclaw-doctor-absent:none not found',
    });
    expect(byName(checks, 'image').fix).toContain('`nanoclaw build`');
    expect(byName(checks, 'credentials').detail).toContain(`chmod 600 ${path.join(dir, '.env')}`);
  });
});

describe('security configuration files', () => {
  it('reports a valid network policy and names the bad field of an invalid one', async () => {
    const { configDir, config } = home();
    const file = path.join(configDir, 'network-policy.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ default: { allow: ['example.com'] }, groups: { family: { noNetwork: true } } }),
    );
    expect(byName(await collectChecks(config), 'network policy')).toMatchObject({ ok: true });
    expect(byName(await collectChecks(config), 'network policy').detail).toContain('family');

    fs.writeFileSync(file, JSON.stringify({ default: { allow: ['https://example.com/path'] } }));
    const check = byName(await collectChecks(config), 'network policy');
    expect(check.ok).toBe(false);
    expect(check.detail).toContain('default.allow.0');
    expect(check.fix).toContain(file);
    expect(check.fix).toMatch(/egress is refused/);
  });

  it('reports an invalid group policy, telling broken JSON from wrong fields', async () => {
    const { configDir, config } = home();
    const file = path.join(configDir, 'group-policy.json');
    fs.writeFileSync(file, JSON.stringify({ groups: { family: { dailyTokenBudget: 200000 } } }));
    expect(byName(await collectChecks(config), 'group policy')).toMatchObject({ ok: true });

    fs.writeFileSync(file, JSON.stringify({ groups: { family: { dailyTokenBudget: 'lots' } } }));
    let check = byName(await collectChecks(config), 'group policy');
    expect(check.ok).toBe(false);
    expect(check.fix).toMatch(/only your own messages trigger/);

    fs.writeFileSync(file, '{ "groups": ');
    check = byName(await collectChecks(config), 'group policy');
    expect(check.ok).toBe(false);
    expect(check.detail).toContain('not valid JSON');
  });

  it('flags an invalid mount allowlist', async () => {
    const { configDir, config } = home();
    fs.writeFileSync(path.join(configDir, 'mount-allowlist.json'), JSON.stringify({ allowedRoots: 'all' }));
    const check = byName(await collectChecks(config), 'mount allowlist');
    expect(check.ok).toBe(false);
    expect(check.fix).toMatch(/no extra mounts are allowed/);
  });
});

describe('permissions for bwrap', () => {
  const dirStat = (mode: number, uid = 0, gid = 0) => ({ mode: 0o40000 | mode, uid, gid }) as fs.Stats;

  it('lists each directory uid 1000 cannot pass on the way to a path', () => {
    const tree: Record<string, fs.Stats> = {
      '/': dirStat(0o755),
      '/root': dirStat(0o700),
      '/root/nanoclaw': dirStat(0o750),
      '/srv': dirStat(0o755),
      '/srv/nanoclaw': dirStat(0o700, 1000, 1000),
      '/srv/shared': dirStat(0o750, 0, 1000),
    };
    const stat = (p: string) => tree[p];
    const who = { uid: 1000, gid: 1000 };
    expect(unreachableDirs('/root/nanoclaw/home', who, stat)).toEqual(['/root', '/root/nanoclaw']);
    expect(unreachableDirs('/srv/nanoclaw', who, stat)).toEqual([]); // owned by the sandbox user
    expect(unreachableDirs('/srv/shared', who, stat)).toEqual([]); // group access
    expect(unreachableDirs('/srv/not-yet', who, stat)).toEqual([]); // checked up to where it will be made
  });

  it('names the locked directory and the chmod that opens it (real files, real bwrap)', async () => {
    const outer = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-locked-')));
    temps.push(outer);
    fs.chmodSync(outer, 0o700);
    const dir = path.join(outer, 'home');
    fs.mkdirSync(dir, { mode: 0o755 });
    const config = loadConfig({
      NANOCLAW_HOME: dir,
      NANOCLAW_CONFIG_DIR: path.join(dir, 'config'),
      CONTAINER_RUNTIME: 'bwrap',
    });
    const checks = await collectChecks(config, { isRoot: true });
    const permissions = byName(checks, 'permissions');
    expect(permissions.ok).toBe(false);
    expect(permissions.detail).toContain(`cannot pass ${outer}`);
    expect(permissions.fix).toContain(`\`chmod o+rx ${outer}\``);
    if (process.getuid?.() === 0) {
      // As root, bwrap runs as the sandbox uid and its own probe fails the same way, with its hint.
      const runtime = byName(checks, 'runtime');
      expect(runtime.ok).toBe(false);
      expect(runtime.fix).toContain(`reachable by uid ${DEFAULT_SANDBOX_UID}`);
    }
    expectEveryFailureHasAFix(checks);
  });
});

describe('nanoclaw doctor: channels and the outbox', () => {
  it('shows the last WhatsApp state and the failed outbox messages with the newest reasons', async () => {
    const { config } = home();
    const store = openStore(config.dbPath);
    store.state.set(
      'channel_health:whatsapp',
      JSON.stringify({ state: 'logged-out', since: '2026-01-02T03:04:05.000Z', told: true }),
    );
    const row = { chatJid: 'local:main', kind: 'agent' as const, sourceFolder: null, sender: null };
    for (const [i, error] of ['recipient refused', 'no channel owns this chat'].entries()) {
      const id = store.outbox.insert([{ ...row, text: `m${i}` }], Date.now());
      store.outbox.markFailed(id, error);
    }
    store.outbox.insert([{ ...row, text: 'sent' }], Date.now());
    store.close();

    const checks = await collectChecks(config);
    expect(byName(checks, 'whatsapp connection')).toMatchObject({
      ok: false,
      warnOnly: true,
      detail: 'logged-out since 2026-01-02T03:04:05.000Z',
      fix: expect.stringContaining('nanoclaw whatsapp-auth'),
    });
    expect(byName(checks, 'outbox')).toMatchObject({
      ok: false,
      warnOnly: true,
      detail:
        '2 message(s) failed for good (newest: local:main: no channel owns this chat; local:main: recipient refused)',
    });
  });

  it('says nothing about channels before the host recorded one, and reports an empty outbox', async () => {
    const { config } = home();
    openStore(config.dbPath).close();
    const checks = await collectChecks(config);
    expect(checks.find((c) => c.name === 'whatsapp connection')).toBeUndefined();
    expect(byName(checks, 'outbox')).toMatchObject({ ok: true, detail: 'no failed messages' });
  });
});
