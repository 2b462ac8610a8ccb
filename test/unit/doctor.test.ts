import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectChecks, type Check } from '../../src/cli/doctor.js';
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
    const runtime = result.stdout.split('\n').find((l) => l.startsWith('[FAIL] runtime: '));
    for (const missing of [
      'docker is not installed',
      'podman is not installed',
      'bubblewrap is not installed',
    ])
      expect(runtime).toContain(missing);
    expect(runtime).toContain('apt-get install docker.io');
    expect(runtime).toContain('apt-get install bubblewrap');
    expect(result.stdout).toMatch(/ {7}fix: .*docker/i);
    expect(result.stdout).toMatch(/\[FAIL\] credentials: no model credentials/);
    expect(result.stdout).toContain('check(s) failed.');
  });

  it('names Apple container and Docker Desktop on macOS', async () => {
    const { config } = home();
    const checks = await withPath(nodeOnlyPath(), () => collectChecks(config, { platform: 'darwin' }));
    const runtime = byName(checks, 'runtime');
    expect(runtime.ok).toBe(false);
    expect(runtime.detail).toMatch(
      /apple: Apple container is not installed.*docker: docker is not installed/,
    );
    expect(`${runtime.detail} ${runtime.fix}`).toContain('https://github.com/apple/container/releases');
    expect(runtime.fix).toMatch(/Docker/);
    expectEveryFailureHasAFix(checks);
  });

  it('uses the configured runtime’s own hint when CONTAINER_RUNTIME names one that is missing', async () => {
    const { config } = home({ CONTAINER_RUNTIME: 'podman' });
    const checks = await withPath(nodeOnlyPath(), () => collectChecks(config));
    const runtime = byName(checks, 'runtime');
    expect(runtime.ok).toBe(false);
    expect(runtime.detail).toBe('podman is not installed');
    expect(runtime.fix).toMatch(/apt-get install podman/);
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
  it('flags an invalid mount allowlist', async () => {
    const { configDir, config } = home();
    fs.writeFileSync(path.join(configDir, 'mount-allowlist.json'), JSON.stringify({ allowedRoots: 'all' }));
    const check = byName(await collectChecks(config), 'mount allowlist');
    expect(check.ok).toBe(false);
    expect(check.fix).toMatch(/no extra mounts are allowed/);
  });
});

describe('doctor for bwrap on a root host', () => {
  it.runIf(process.getuid?.() === 0)(
    'names the fix when the sandbox user cannot reach the project',
    async () => {
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
      const runtime = byName(checks, 'runtime');
      expect(runtime.ok).toBe(false);
      expect(runtime.fix).toContain(`reachable by uid ${DEFAULT_SANDBOX_UID}`);
      expectEveryFailureHasAFix(checks);
    },
  );
});

describe('nanoclaw doctor: channels and the outbox', () => {
  it('shows the last WhatsApp state and how many outbox messages failed', async () => {
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
    expect(byName(checks, 'whatsapp')).toMatchObject({
      ok: false,
      warnOnly: true,
      detail: 'not linked; logged-out since 2026-01-02T03:04:05.000Z',
      fix: expect.stringContaining('nanoclaw whatsapp-auth'),
    });
    expect(byName(checks, 'outbox')).toMatchObject({
      ok: false,
      warnOnly: true,
      detail: '2 message(s) failed for good',
    });
  });

  it('says nothing about channels before the host recorded one, and reports an empty outbox', async () => {
    const { config } = home();
    openStore(config.dbPath).close();
    const checks = await collectChecks(config);
    expect(byName(checks, 'whatsapp').detail).toBe('not linked');
    expect(byName(checks, 'outbox')).toMatchObject({ ok: true, detail: 'no failed messages' });
  });
});
