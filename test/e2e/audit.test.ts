import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

// Words that pick each audited row of README.md's threat table out of the output.
const ROWS = {
  hostFiles: 'reads host files',
  otherGroup: "another group's files",
  mainSecrets: 'main agent reads',
  apiKey: 'the API key',
  network: 'over the network',
  widen: 'widens its own',
  links: 'FIFO or swapped folder',
  malformed: 'malformed',
  escalate: 'escalates',
};
/** Each row's verdict, which leads its line. */
const verdicts = (out: string) => {
  const lines = out.trim().split('\n').slice(1, -1);
  const of = (id: keyof typeof ROWS) => lines.find((l) => l.includes(ROWS[id]))?.split(/ {2,}/)[0];
  return { lines, of };
};

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

  beforeAll(() => {
    t = tempHome();
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
    env = { NANOCLAW_HOME: t.home, NANOCLAW_CONFIG_DIR: path.join(t.home, 'config') };
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
      const { lines, of } = verdicts(run.out);
      expect(lines.length).toBeGreaterThan(10); // every row of the README's table
      for (const line of lines) expect(line).toMatch(/^(held|n\/a|not audited) {2,}\S/);
      for (const id of ['hostFiles', 'apiKey', 'network', 'links', 'escalate'] as const)
        expect(of(id), id).toBe('held');
      expect(auditLeftovers(t.home)).toEqual([]);
    },
  );

  it('audits a non-main group and leaves its files as they were', { timeout: 120_000 }, async () => {
    const before = fs.readdirSync(work()).sort();
    const run = await runCli(['audit', '--runtime', runtime, '--group', 'work'], env);
    expect(run.code, `${run.out}\n${run.err}`).toBe(0);
    expect(run.err).toBe('');
    expect(run.out).toContain(`group work on ${runtime}`);
    const verdict = verdicts(run.out).of;
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
      expect(run.stdout).toMatch(/^usage:\n {2}nanoclaw audit \[--group <folder>\] \[--runtime <kind>\]/);
      expect(run.stderr).toBe('');
      expect(fs.readdirSync(home)).toEqual([]); // no store, no groups, no sandbox
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
