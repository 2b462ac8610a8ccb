import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  hasSecret,
  judge,
  probeSource,
  renderTable,
  REPORT_MARKER,
  sha256Hex,
  type AuditEvidence,
  type ProbeReport,
} from '../../src/audit/probe.js';
import { plantPlan, runHostActions } from '../../src/audit/run-audit.js';
import { runAuditCommand } from '../../src/cli/audit.js';
import { PROJECT_ROOT } from '../../src/config.js';
import { openStore } from '../../src/db/store.js';
import { registerGroup } from '../../src/groups.js';
import { prepareGroupDirs } from '../../src/sandbox/mount-plan.js';
import { tempHome } from '../helpers/temp-home.js';

const KEY = 'sk-ant-canary-unit-0123456789abcdef';
const PLANTS = plantPlan('n0nce', '/host/data/audit-n0nce/decoy', ['browser'], true);
const ok = (out: string) => ({ code: 0, out });
const anyFailed = (rows: ReturnType<typeof judge>) => rows.some((r) => r.verdict === 'failed');

/** What a sandbox that holds everywhere reports. */
function cleanReport(): ProbeReport {
  return {
    shell: {
      'no-project': ok(''),
      'env-masked': { code: 1, out: '' },
      uid: ok('61000'),
      capabilities: ok('CapPrm:\t0000000000000000\nCapEff:\t0000000000000000'),
      'no-new-privs': ok('NoNewPrivs:\t1'),
      seccomp: ok('Seccomp:\t2'),
      userns: { code: 1, out: 'unshare: unshare failed: Operation not permitted' },
      'pids-limit': ok('512'),
      'memory-limit': ok('2147483648'),
    },
    interfaces: ['lo'],
    dials: [
      { id: 'direct-canary', outcome: 'refused', detail: 'ECONNREFUSED' },
      { id: 'direct-metadata', outcome: 'refused', detail: 'ENETUNREACH' },
      { id: 'egress-metadata', outcome: 'connected', detail: 'HTTP/1.1 403 Forbidden' },
    ],
    hits: {},
    plants: PLANTS.map(({ id }) => {
      const ok = !/^(inbox|global|rootfs|project)-/.test(id); // read-only places refuse
      return { id, ok, detail: ok ? 'done' : 'EROFS' };
    }),
  };
}

function evidence(overrides: Partial<AuditEvidence> = {}, report: Partial<ProbeReport> = {}): AuditEvidence {
  return {
    isMain: true,
    expectedUid: 61000,
    report: { ...cleanReport(), ...report },
    secrets: 1,
    hostActions: [
      { action: 'ipcScan', outcome: 'done', detail: 'planted entries refused' },
      { action: 'writeRunLog', outcome: 'done', detail: '' },
    ],
    decoyChanged: false,
    ...overrides,
  };
}

// The checks by their row of README.md's threat table, in its words.
const THREATS = {
  hostFiles: 'An agent reads host files',
  otherGroup: "An agent reads another group's files, IPC or session",
  mainSecrets: "The main agent reads `.env`, WhatsApp credentials or other groups' IPC",
  apiKey: 'An agent reads the API key',
  network: 'An agent exfiltrates data or attacks the host, LAN or cloud metadata over the network',
  widen: 'An agent widens its own mounts or limits',
  links:
    'An agent makes the host write, move, delete or read host files through a link, FIFO or swapped folder it planted',
  malformed: 'A malformed or huge IPC file or output crashes the host',
  escalate: 'An agent escalates inside the sandbox or exhausts the machine',
};

const verdictOf = (e: AuditEvidence, row: keyof typeof THREATS) =>
  judge(e).find((r) => r.id === row)?.verdict;
const withShell = (shell: ProbeReport['shell']) =>
  evidence({}, { shell: { ...cleanReport().shell, ...shell } });

describe('audit verdicts', () => {
  it('a sandbox that holds everywhere fails no row', () => {
    const rows = judge(evidence());
    expect(anyFailed(rows)).toBe(false);
    for (const id of [
      'hostFiles',
      'otherGroup',
      'mainSecrets',
      'apiKey',
      'network',
      'links',
      'escalate',
    ] as const)
      expect(verdictOf(evidence(), id), id).toBe('held');
    const others = judge(evidence()).filter((r) => r.id === '-');
    expect(others.length).toBeGreaterThan(5);
    expect(others.every((r) => r.verdict === 'not audited')).toBe(true);
  });

  it('fails when the key is seen by its fingerprint, and never prints it', () => {
    const seen = evidence({}, { hits: { apiKey: ['/workspace/group/leak.txt'] } });
    expect(verdictOf(seen, 'apiKey')).toBe('failed');
    expect(anyFailed(judge(seen))).toBe(true);
    expect(renderTable(judge(seen))).toContain('key found in /workspace/group/leak.txt');
    expect(renderTable(judge(seen))).not.toContain(KEY); // never printed
  });

  it('fails on a network interface besides lo, a reached canary, or an egress not refused', () => {
    expect(verdictOf(evidence({}, { interfaces: ['lo', 'eth0'] }), 'network')).toBe('failed');
    expect(verdictOf(evidence({}, { interfaces: null }), 'network')).toBe('failed');
    const reached = { id: 'direct-canary', outcome: 'connected', detail: '127.0.0.1:4000' };
    expect(verdictOf(evidence({}, { dials: [reached] }), 'network')).toBe('failed');
    const allowed = evidence(
      {},
      { dials: [{ id: 'egress-metadata', outcome: 'connected', detail: 'HTTP/1.1 200 OK' }] },
    );
    expect(verdictOf(allowed, 'network')).toBe('failed');
  });

  it('fails when the host blocked on a plant, or the decoy changed or was read', () => {
    const blocked = evidence({
      hostActions: [{ action: 'ipcScan', outcome: 'blocked', detail: 'did not return in time' }],
    });
    expect(verdictOf(blocked, 'links')).toBe('failed');
    expect(verdictOf(blocked, 'malformed')).toBe('failed');
    expect(verdictOf(evidence({ decoyChanged: true }), 'links')).toBe('failed');
    const read = evidence({ hostActions: [{ action: 'ipcScan', outcome: 'unsafe', detail: '' }] });
    expect(verdictOf(read, 'links')).toBe('failed');
    const inboxWritable = cleanReport().plants.map((p) => (p.id === 'inbox-write' ? { ...p, ok: true } : p));
    expect(verdictOf(evidence({}, { plants: inboxWritable }), 'links')).toBe('failed');
  });

  it('judges escalation from the kernel status, and limits seen from either side', () => {
    expect(verdictOf(withShell({ uid: ok('0') }), 'escalate')).toBe('failed');
    expect(verdictOf(withShell({ capabilities: ok('CapEff:\t00000000a80425fb') }), 'escalate')).toBe(
      'failed',
    );
    expect(verdictOf(withShell({ userns: ok('') }), 'escalate')).toBe('failed');
    expect(verdictOf(withShell({ 'no-new-privs': ok('NoNewPrivs:\t0') }), 'escalate')).toBe('failed');
    expect(verdictOf(withShell({ seccomp: ok('Seccomp:\t0') }), 'escalate')).toBe('failed');
    const rootfs = cleanReport().plants.map((p) => (p.id === 'rootfs-usr' ? { ...p, ok: true } : p));
    expect(verdictOf(evidence({}, { plants: rootfs }), 'escalate')).toBe('failed');
    expect(verdictOf(withShell({ 'pids-limit': ok('max') }), 'escalate')).toBe('failed');
    // bwrap: /sys is hidden, and a limit seen from the host is patched in by the audit.
    const invisible = judge(withShell({ 'pids-limit': { code: 1, out: '' } }));
    expect(
      invisible.find((r) => r.id === 'escalate')?.checks.find((c) => c.id === 'pids-limit')?.status,
    ).toBe('n/a');
  });

  it("lets main read other groups' folders through the project, nothing else", () => {
    const viaProject = { otherGroup: ['/workspace/project/groups/audit-x/audit.txt'] };
    expect(verdictOf(evidence({}, { hits: viaProject }), 'otherGroup')).toBe('held');
    expect(verdictOf(evidence({ isMain: false }, { hits: viaProject }), 'otherGroup')).toBe('failed');
    expect(verdictOf(evidence({}, { hits: { otherIpc: ['/workspace/ipc/audit.txt'] } }), 'otherGroup')).toBe(
      'failed',
    );
    expect(verdictOf(withShell({ 'env-masked': ok('.env has content') }), 'mainSecrets')).toBe('failed');
    const store = { store: ['/workspace/project/store/audit-x/audit.txt'] };
    expect(verdictOf(evidence({}, { hits: store }), 'mainSecrets')).toBe('failed');
    const nonMain = { ...withShell({ 'no-project': { code: 1, out: '' } }), isMain: false };
    expect(verdictOf(nonMain, 'mainSecrets')).toBe('n/a');
    expect(verdictOf(nonMain, 'hostFiles')).toBe('held');
    expect(verdictOf({ ...evidence(), isMain: false }, 'hostFiles')).toBe('failed'); // the project is mounted
  });

  it("prints the README's threat table, each check on its row", () => {
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Security model'));
    const threats = table
      .slice(0, table.indexOf('\n\n', table.indexOf('| threat')))
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| threat'))
      .map((l) => l.split(' | ')[0]!.slice(2));
    expect(threats.length).toBeGreaterThan(10);
    const rows = judge(evidence());
    expect(rows.map((r) => r.threat)).toEqual(threats);
    // A reordered README would put a check on another threat's row.
    for (const [id, threat] of Object.entries(THREATS))
      expect(rows.find((r) => r.id === id)?.threat, id).toBe(threat);
  });
});

describe('audit probe', () => {
  it('finds a key by its fingerprint, and nothing that merely resembles it', () => {
    const fp = [sha256Hex(KEY)];
    expect(hasSecret(`x-api-key: ${KEY}\n`, fp, sha256Hex)).toBe(true);
    expect(hasSecret(KEY, fp, sha256Hex)).toBe(true);
    expect(hasSecret(KEY.slice(0, -1), fp, sha256Hex)).toBe(false);
    expect(hasSecret(`${KEY.slice(0, -1)}X`, fp, sha256Hex)).toBe(false);
  });

  it('as shipped (source on stdin), reports a key and a sentinel it can read, outside any sandbox', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-probe-'));
    try {
      fs.mkdirSync(path.join(dir, 'deep', 'er'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'deep', 'er', 'config.txt'), `token=${KEY}\n`);
      fs.writeFileSync(path.join(dir, 'note.txt'), 'sentinel-token-1\n');
      fs.symlinkSync('/etc/passwd', path.join(dir, 'link'));
      const source = probeSource({
        sentinels: [{ id: 'data', hostPath: path.join(dir, 'nope'), token: 'sentinel-token-1' }],
        secrets: [sha256Hex(KEY)],
        scanRoots: [dir],
        dials: {}, // nothing to dial from a real machine
        egressSocket: path.join(dir, 'no.sock'),
        shell: { uid: ['id -u'], missing: ['no-such-command-here'] },
        plants: [{ id: 'fifo', cmd: `mkfifo ${path.join(dir, 'f.json')}` }],
      });
      const run = spawnSync(process.execPath, ['--input-type=module', '-'], {
        input: source,
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      const line = run.stdout.split('\n').find((l) => l.startsWith(REPORT_MARKER))!;
      const report = JSON.parse(line.slice(REPORT_MARKER.length)) as ProbeReport;
      expect(report.hits).toEqual({
        apiKey: [path.join(dir, 'deep', 'er', 'config.txt')],
        data: [path.join(dir, 'note.txt')],
      });
      expect(report.shell).toEqual({
        uid: { code: 0, out: String(process.getuid!()) },
        missing: { code: 127, out: '' },
      });
      expect(report.plants).toEqual([{ id: 'fifo', ok: true, detail: 'done' }]);
      expect(fs.lstatSync(path.join(dir, 'f.json')).isFIFO()).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit host actions', () => {
  it(
    'marks an action that does not return in time as blocked, and runs the rest',
    { timeout: 60_000 },
    async () => {
      const t = tempHome();
      try {
        const store = openStore(t.config.dbPath);
        const registered = registerGroup(store, t.config, {
          jid: 'local:work',
          name: 'Work',
          folder: 'work',
        });
        store.close();
        if (!registered.ok) throw new Error(registered.error);
        prepareGroupDirs(registered.group, t.config, { uid: 61000, gid: 61000 });
        // A planted name the IPC scan never handles (not *.json): it waits for it past the deadline.
        fs.writeFileSync(
          path.join(t.config.ipcDir, 'work', 'from-agent', 'messages', 'audit-deadbeef.txt'),
          '',
        );
        const outcome = await runHostActions(
          { config: t.config, group: registered.group, nonce: 'deadbeef' },
          1000,
        );
        expect(Object.fromEntries(outcome.map((r) => [r.action, r.outcome]))).toEqual({
          prepareGroupDirs: 'done',
          ipcScan: 'blocked',
          writeRunLog: 'done',
          ensureGroupFolder: 'done',
          prepareAgentSkills: 'done',
        });
        const rows = judge(evidence({ hostActions: outcome }));
        expect(rows.find((r) => r.id === 'links')?.verdict).toBe('failed');
      } finally {
        t.cleanup();
      }
    },
  );
});

describe('nanoclaw audit arguments', () => {
  const streams = () => {
    let out = '';
    let err = '';
    return {
      out: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream,
      err: { write: (s: string) => ((err += s), true) } as unknown as NodeJS.WritableStream,
      text: () => ({ out, err }),
    };
  };

  it('prints usage for --help and refuses unknown options and runtimes with code 2', async () => {
    const t = tempHome();
    try {
      const help = streams();
      expect(await runAuditCommand(['--help'], { config: t.config, ...help })).toBe(0);
      expect(help.text().out).toContain('nanoclaw audit [--group <folder>] [--runtime <kind>]');
      for (const args of [['--bogus'], ['--runtime', 'vm'], ['--group']]) {
        const bad = streams();
        expect(await runAuditCommand(args, { config: t.config, ...bad }), args.join(' ')).toBe(2);
        expect(bad.text().err).toMatch(/^error: /);
      }
    } finally {
      t.cleanup();
    }
  });
});
