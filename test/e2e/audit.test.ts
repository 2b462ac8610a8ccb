import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THREATS } from '../../src/audit/verdicts.js';
import { PROJECT_ROOT } from '../../src/config.js';
import { openStore } from '../../src/db/store.js';
import { ensureMainGroup, registerGroup } from '../../src/groups.js';
import { ensureHostBuild } from '../helpers/host-process.js';
import { tempHome } from '../helpers/temp-home.js';

/**
 * `nanoclaw audit` as users run it (the built CLI), against real docker and bwrap sandboxes in a
 * temp NANOCLAW_HOME: every row held or n/a, exit code 0, and afterwards nothing of the audit left
 * while the group's own files are exactly as they were.
 */
const MAIN_JS = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN_JS, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('close', (code) => resolve({ code, out, err }));
  });
}

/** Every path below `dir` whose name carries the audit's marks. */
function auditLeftovers(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((rel) => /audit-[0-9a-f]{8}|\.audit-/.test(path.basename(rel)));
}

beforeAll(() => ensureHostBuild());

describe.each(['docker', 'bwrap', 'podman'] as const)('nanoclaw audit (%s)', (runtime) => {
  let t: ReturnType<typeof tempHome>;
  let env: Record<string, string>;
  const work = () => path.join(t.home, 'groups', 'work');

  beforeAll(async () => {
    const port = await freePort(); // nothing listens there: the audit's check for a running host passes
    t = tempHome({ LOCAL_CHANNEL_PORT: String(port) });
    fs.chmodSync(t.home, 0o755); // the sandbox user must reach the group folders
    fs.writeFileSync(
      path.join(t.home, '.env'),
      `ANTHROPIC_API_KEY=sk-ant-canary-audit-${runtime}-0123456789abcdef\nANTHROPIC_BASE_URL=http://127.0.0.1:9\n`,
    );
    const store = openStore(t.config.dbPath);
    ensureMainGroup(store, t.config);
    expect(registerGroup(store, t.config, { jid: 'local:work', name: 'Work', folder: 'work' }).ok).toBe(true);
    store.close();
    // The group's own files: the audit moves some aside and must put them back unchanged.
    fs.writeFileSync(path.join(work(), 'CLAUDE.md'), 'my memory\n');
    fs.writeFileSync(path.join(work(), 'logs', 'earlier.log'), 'an earlier run\n');
    fs.writeFileSync(path.join(work(), 'notes.txt'), 'notes\n');
    // A domain the policy denies work: the audit checks the egress proxy refuses it (by name, unresolved).
    fs.mkdirSync(path.join(t.home, 'config'), { recursive: true });
    fs.writeFileSync(
      path.join(t.home, 'config', 'network-policy.json'),
      JSON.stringify({ groups: { work: { deny: ['denied.example'] } } }),
    );
    env = {
      NANOCLAW_HOME: t.home,
      NANOCLAW_CONFIG_DIR: path.join(t.home, 'config'),
      LOCAL_CHANNEL_PORT: String(port),
    };
  });
  afterAll(() => t?.cleanup());

  it(
    'audits the main group: every threat row held, n/a or not audited; exit 0',
    { timeout: 120_000 },
    async () => {
      const run = await runCli(['audit', '--runtime', runtime], env);
      console.info(run.out);
      expect(run.code, `${run.out}\n${run.err}`).toBe(0);
      expect(run.err).toBe(''); // quiet: the table is the output
      expect(run.out).toContain(`group main on ${runtime}`);
      expect(run.out).toContain('No row failed.');
      for (const threat of Object.values(THREATS)) {
        const line = run.out.split('\n').find((l) => l.startsWith(threat));
        expect(line, threat).toMatch(/ {2}(held|n\/a|not audited) {2}/);
      }
      for (const covered of [
        THREATS.hostFiles,
        THREATS.apiKey,
        THREATS.network,
        THREATS.links,
        THREATS.escalate,
      ])
        expect(run.out.split('\n').find((l) => l.startsWith(covered))).toMatch(/ {2}held {2}/);
      expect(auditLeftovers(t.home)).toEqual([]);
    },
  );

  it('audits a non-main group and leaves its files as they were', { timeout: 120_000 }, async () => {
    const before = fs.readdirSync(work()).sort();
    const run = await runCli(['audit', '--runtime', runtime, '--group', 'work'], env);
    expect(run.code, `${run.out}\n${run.err}`).toBe(0);
    expect(run.out).toContain(`group work on ${runtime}`);
    const verdict = (id: keyof typeof THREATS) =>
      run.out
        .split('\n')
        .find((l) => l.startsWith(THREATS[id]))
        ?.split(/ {2,}/)[1];
    for (const id of [
      'hostFiles',
      'otherGroup',
      'apiKey',
      'network',
      'widen',
      'links',
      'malformed',
      'escalate',
    ] as const)
      expect(verdict(id), id).toBe('held');
    expect(verdict('mainSecrets')).toBe('n/a');

    expect(fs.readdirSync(work()).sort()).toEqual(before);
    expect(fs.readFileSync(path.join(work(), 'CLAUDE.md'), 'utf8')).toBe('my memory\n');
    expect(fs.lstatSync(path.join(work(), 'logs')).isDirectory()).toBe(true);
    expect(fs.readdirSync(path.join(work(), 'logs'))).toEqual(['earlier.log']);
    expect(fs.readFileSync(path.join(work(), 'notes.txt'), 'utf8')).toBe('notes\n');
    expect(fs.lstatSync(path.join(t.home, 'data', 'ipc', 'work', 'from-agent', 'tasks')).isDirectory()).toBe(
      true,
    );
    expect(auditLeftovers(t.home)).toEqual([]);
    expect(fs.readdirSync(os.tmpdir()).filter((f) => /^audit-[0-9a-f]{8}$/.test(f))).toEqual([]);
  });
});

describe('nanoclaw audit --help (built CLI)', () => {
  it('prints the usage and does nothing else', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-help-'));
    try {
      const run = spawnSync(process.execPath, [MAIN_JS, 'audit', '--help'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, NANOCLAW_HOME: home, NANOCLAW_CONFIG_DIR: path.join(home, 'config') },
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^usage: nanoclaw audit \[--group <folder>\] \[--runtime <kind>\]/);
      expect(run.stderr).toBe('');
      expect(fs.readdirSync(home)).toEqual([]); // no store, no groups, no sandbox
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
