import type childProcess from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { PROJECT_ROOT } from '../config.js';
import { CONTAINER_PATHS as C } from '../sandbox/mount-plan.js';
import type { HostAction } from './run-audit.js';

// auditProbe and hasSecret run in the sandbox as source text: no imported names.
export type ProbeReport = Awaited<ReturnType<typeof auditProbe>>;
export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';

// Secrets reach the probe as SHA-256 only; it hashes each run of 16+ [\w-] characters it reads.
export function hasSecret(text: string, hashes: string[], sha256: (s: string) => string) {
  return (text.match(/[\w-]{16,}/g) ?? []).some((t) => hashes.includes(sha256(t)));
}

export const sha256Hex = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

export async function auditProbe(
  c: {
    sentinels: { id: string; hostPath: string; token: string }[];
    secrets: string[]; // SHA-256
    scanRoots: string[];
    dials: Record<string, string>; // `host:port`, or a request line for the egress proxy
    egressSocket: string;
    shell: Record<string, [string, ...unknown[]]>; // [command]
    plants: { id: string; cmd: string }[];
  },
  d: { fs: typeof fs; net: typeof net; crypto: typeof crypto; childProcess: typeof childProcess },
) {
  const { fs, net } = d;
  const attempt = <T>(fn: () => T) => {
    try {
      return fn();
    } catch {
      return null;
    }
  };
  const run = (cmd: string) =>
    d.childProcess.spawnSync('sh', ['-c', cmd], { timeout: 5000, encoding: 'utf8' });
  const deadline = Date.now() + 20_000;
  const hits: Record<string, string[]> = {};
  const note = (id: string, at: string) => (hits[id] ??= []).push(at);
  const sha256 = (s: string) => d.crypto.createHash('sha256').update(s).digest('hex');
  const buf = Buffer.alloc(4 << 20);
  const inspect = (at: string) =>
    attempt(() => {
      const fd = fs.openSync(at, fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      const text = buf.toString('latin1', 0, attempt(() => fs.readSync(fd, buf)) ?? 0);
      fs.closeSync(fd);
      if (hasSecret(text, c.secrets, sha256)) note('apiKey', at);
      for (const s of c.sentinels) if (text.includes(s.token)) note(s.id, at);
    });
  for (const pid of attempt(() => fs.readdirSync('/proc')) ?? [])
    if (/^\d+$/.test(pid)) ['environ', 'cmdline'].forEach((f) => inspect(`/proc/${pid}/${f}`));
  const walk = (dir: string): void => {
    for (const e of attempt(() => fs.readdirSync(dir, { withFileTypes: true })) ?? []) {
      if (Date.now() > deadline) return;
      if (e.isFile()) inspect(`${dir}/${e.name}`);
      else if (e.isDirectory() && !['node_modules', '.git'].includes(e.name)) walk(`${dir}/${e.name}`);
    }
  };
  c.scanRoots.forEach(walk);
  for (const s of c.sentinels) if (attempt(() => fs.lstatSync(s.hostPath))) note(s.id, s.hostPath);

  const interfaces = attempt(() => fs.readFileSync('/proc/net/dev', 'utf8').match(/[^\s:]+(?=:)/g));
  const dial = (id: string, to: string) =>
    new Promise<{ id: string; outcome: string; detail: string }>((resolve) => {
      const [host, port] = to.split(':');
      const egress = to.includes(' ');
      const socket = egress ? net.connect(c.egressSocket) : net.connect(+port!, host);
      let head = '';
      const done = (outcome: string, detail: string) => {
        socket.destroy();
        resolve({ id, outcome, detail });
      };
      socket.setTimeout(5000, () => done('timeout', 'no answer'));
      socket.once('error', (err: NodeJS.ErrnoException) => done('refused', err.code ?? String(err)));
      socket.once('connect', () => (egress ? socket.write(`${to} HTTP/1.0\r\n\r\n`) : done('connected', to)));
      socket.on('data', (chunk: Buffer) => {
        if ((head += chunk.toString('latin1')).includes('\r\n')) done('connected', head.split('\r\n')[0]!);
      });
    });
  const dials = await Promise.all(Object.entries(c.dials).map(([id, to]) => dial(id, to)));

  const shell = Object.fromEntries(
    Object.entries(c.shell).map(([id, [cmd]]) => {
      const { status: code, stdout } = run(cmd);
      return [id, { code, out: (stdout ?? '').trim() }];
    }),
  );
  const plants = c.plants.map(({ id, cmd }) => {
    const { status, stderr } = run(cmd);
    return { id, ok: !status, detail: status ? stderr.trim() : 'done' };
  });
  return { interfaces, dials, hits, shell, plants };
}

export const probeSource = (config: Parameters<typeof auditProbe>[0]) =>
  `import fs from 'node:fs'; import net from 'node:net'; import crypto from 'node:crypto';
import childProcess from 'node:child_process';
const __name = (fn) => fn; // esbuild's wrapper
${hasSecret}
const report = await (${auditProbe})(${JSON.stringify(config)}, { fs, net, crypto, childProcess });
process.stdout.write(${JSON.stringify(REPORT_MARKER)} + JSON.stringify(report));`;

// The checks, on their row of README.md's "Security model" table; '-': a row not audited.
const AUDITED = 'hostFiles otherGroup mainSecrets apiKey network widen - links malformed escalate'.split(' ');

export type AuditEvidence = {
  isMain: boolean;
  expectedUid: number;
  report: ProbeReport;
  secrets: number;
  hostActions: HostAction[];
  decoyChanged: boolean;
};

type Ok = (s: { code: number | null; out: string }, e: AuditEvidence) => boolean | null;
const P = C.project;
const status = (field: string, ok: (out: string) => boolean): [string, Ok] => [
  `grep -E '^${field}:' /proc/self/status`,
  (s) => (s.code ? null : ok(s.out)),
];
const limit = (...files: string[]): [string, Ok] => [
  `cd /sys/fs/cgroup && cat ${files.join(' ')}`,
  ({ out }) => (out ? out !== 'max' && Number(out) < 2 ** 60 : null),
];
// Run in the sandbox; null is n/a. All but the first two judge escalation.
export const SHELL: Record<string, [string, Ok]> = {
  'no-project': [`test -d ${P}`, (s) => s.code !== 0],
  'env-masked': [`test -s ${P}/.env && echo .env has content`, (s) => !s.out],
  uid: ['id -u', (s, e) => s.out === String(e.expectedUid)],
  capabilities: status('Cap(Eff|Prm)', (out) => !/\s0*[1-9a-f]/.test(out)),
  'no-new-privs': status('NoNewPrivs', (out) => out.endsWith('1')),
  seccomp: status('Seccomp', (out) => !out.endsWith('0')),
  userns: ['unshare -U true 2>&1', (s) => (s.code === 127 ? null : s.code !== 0)],
  'pids-limit': limit('pids.max', 'pids/pids.max'),
  'memory-limit': limit('memory.max', 'memory/memory.limit_in_bytes'),
};

const check = (id: string, ok: boolean | null, detail: unknown) => ({
  id,
  status: ok === null ? 'n/a' : ok ? 'held' : 'failed',
  detail: String(detail),
});

export function judge(e: AuditEvidence) {
  const { report: r, isMain } = e;
  const shell = (id: string) => {
    const s = r.shell[id] ?? { code: null, out: '' };
    return check(id, SHELL[id]![1](s, e), s.out || `exit code ${s.code}`);
  };
  const sentinel = (place: string) => {
    const hits = r.hits[place] ?? [];
    // Main sees the groups folder through the project, by design.
    const own = place === 'otherGroup' && isMain ? hits.filter((w) => !w.startsWith(`${P}/`)) : hits;
    return check(`sentinel-${place}`, hits.length && !own.length ? null : !own.length, `seen at ${hits}`);
  };
  const refused = (prefix: string) =>
    r.plants.filter((p) => p.id.startsWith(prefix)).map((p) => check(p.id, !p.ok, p.detail));
  const ipc = e.hostActions.find((a) => a.action === 'ipcScan');
  const keyAt = r.hits.apiKey ?? [];
  const checks: Record<string, ReturnType<typeof check>[]> = {
    hostFiles: [...['data', 'store', 'hostTmp'].map(sentinel), ...(isMain ? [] : [shell('no-project')])],
    otherGroup: [...['otherGroup', 'otherIpc', 'otherSession'].map(sentinel), ...refused('global-')],
    mainSecrets: isMain ? [shell('env-masked'), ...['store', 'otherIpc'].map(sentinel)] : [],
    apiKey: [check('fingerprint', e.secrets ? !keyAt.length : null, `key found in ${keyAt}`)],
    network: [
      check('interfaces', r.interfaces?.every((i) => i === 'lo') ?? false, r.interfaces),
      ...r.dials.map((d) =>
        check(
          d.id,
          d.id.startsWith('egress-') ? /^HTTP\/\S+ 403/.test(d.detail) : d.outcome !== 'connected',
          d.detail,
        ),
      ),
    ],
    widen: [sentinel('config'), ...refused('project-')],
    malformed: [check('ipc-fifo', ipc?.outcome === 'done', `${ipc?.outcome} ${ipc?.detail}`)],
    links: [
      ...e.hostActions.map((a) =>
        check(`host-${a.action}`, ['done', 'error'].includes(a.outcome), `${a.outcome} ${a.detail}`),
      ),
      check('decoy', !e.decoyChanged, 'the decoy folder changed'),
      ...refused('inbox-'),
    ],
    escalate: [...Object.keys(SHELL).slice(2).map(shell), ...refused('rootfs-')],
  };
  const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('| threat |')).split('\n\n')[0]!;
  const threats = [...table.matchAll(/^\| ([^|]+?) \|/gm)].slice(1);
  if (threats.length < AUDITED.length) throw new Error('README.md lacks its threat table');
  return threats.map(([, threat = ''], i) => {
    const id = AUDITED[i] ?? '-';
    const own = checks[id];
    const has = (s: string) => own?.some((c) => c.status === s);
    const verdict = !own ? 'not audited' : has('failed') ? 'failed' : has('held') ? 'held' : 'n/a';
    return { id, threat, verdict, checks: own ?? [] };
  });
}

export const renderTable = (rows: ReturnType<typeof judge>) =>
  rows
    .map(({ threat, verdict, checks }) => {
      const why = checks.filter((c) => verdict !== 'held' && c.status === verdict);
      return `${verdict.padEnd(13)}${[threat, ...why.map((c) => `${c.id}: ${c.detail}`)].join('; ')}\n`;
    })
    .join('');
