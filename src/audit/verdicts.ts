import { CONTAINER_PATHS as C } from '../sandbox/mount-plan.js';
import type { HostAction } from './host-actions.js';
import type { ProbeReport } from './probe.js';

// The threat rows of README.md's "Security model" table, in its words and order.
export const THREATS = {
  hostFiles: 'An agent reads host files',
  otherGroup: "An agent reads another group's files, IPC or session",
  mainSecrets: "The main agent reads `.env`, WhatsApp credentials or other groups' IPC",
  apiKey: 'An agent reads the API key',
  network: 'An agent exfiltrates data or attacks the host, LAN or cloud metadata over the network',
  widen: 'An agent widens its own mounts or limits',
  speaksFor: 'An agent speaks for another group or manages its tasks',
  links:
    'An agent makes the host write, move, delete or read host files through a link, FIFO or swapped folder it planted',
  malformed: 'A malformed or huge IPC file or output crashes the host',
  escalate: 'An agent escalates inside the sandbox or exhausts the machine',
  proxySockets: "Another local user talks to a group's model or egress proxy",
  spend: 'Runaway model spend',
  flood: 'An agent floods a chat',
  stranger: 'A stranger in a group triggers the agent',
  localChat: 'Another local user or a web page drives the local chat',
  stuck: 'A stuck or crashed sandbox loses or duplicates answers',
  injection: 'Prompt injection (a message or web page talks the agent into something)',
  mainCompromised: 'The main group is compromised',
} as const;
export type ThreatId = keyof typeof THREATS;

type Status = 'held' | 'failed' | 'n/a';
type Check = { id: string; status: Status; detail: string };
export type RowResult = { id: ThreatId; threat: string; verdict: Status | 'not audited'; checks: Check[] };

export interface AuditEvidence {
  isMain: boolean;
  expectedUid: number;
  report: ProbeReport;
  secrets: number; // in .env
  hostActions: HostAction[];
  decoyChanges: string[];
  decoyRead: boolean; // the IPC handler was given a decoy file's content
  proxyDials: string[]; // what the egress proxy tried to dial
}

type Shell = { code: number | null; out: string };
type Probe = [ThreatId, string, (s: Shell, e: AuditEvidence) => boolean | null];
const P = C.project;
const status = (field: string, ok: (out: string) => boolean): Probe => [
  'escalate',
  `grep -E '^${field}:' /proc/self/status`,
  (s) => (s.code ? null : ok(s.out)),
];
const limit = (...files: string[]): Probe => [
  'escalate',
  `cd /sys/fs/cgroup && cat ${files.join(' ')}`,
  ({ out }) => (out ? out !== 'max' && Number(out) < 2 ** 60 : null),
];
// Run in the sandbox (sh -c), each judged on its output; null is n/a.
export const SHELL: Record<string, Probe> = {
  'no-project': ['hostFiles', `test -d ${P}`, (s) => s.code !== 0],
  'env-masked': ['mainSecrets', `test -s ${P}/.env && echo .env has content`, (s) => !s.out],
  'store-masked': ['mainSecrets', `ls -A ${P}/store`, (s) => !s.out],
  'data-masked': ['mainSecrets', `ls -A ${P}/data`, (s) => !s.out],
  uid: ['escalate', 'id -u', (s, e) => s.out !== '0' && s.out === String(e.expectedUid)],
  capabilities: status('Cap(Eff|Prm)', (out) => !/\s0*[1-9a-f]/.test(out)),
  'no-new-privs': status('NoNewPrivs', (out) => out.endsWith('1')),
  seccomp: status('Seccomp', (out) => !out.endsWith('0')),
  userns: ['escalate', 'unshare -U true 2>&1', (s) => (s.code === 127 ? null : s.code !== 0)],
  'root-readonly': [
    'escalate',
    `awk '$5 == "/" { o = $6 } END { print o }' /proc/self/mountinfo`,
    (s) => s.out.split(',').includes('ro'),
  ],
  'pids-limit': limit('pids.max', 'pids/pids.max'),
  'memory-limit': limit('memory.max', 'memory/memory.limit_in_bytes'),
  'runtime-socket': [
    'escalate',
    'ls /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock /run/podman/podman.sock /var/run/crio/crio.sock',
    (s) => !s.out,
  ],
};

const check = (id: string, ok: boolean | null, detail: unknown): Check => ({
  id,
  status: ok === null ? 'n/a' : ok ? 'held' : 'failed',
  detail: String(detail),
});

// Pure: the audit collects, this decides, so a fabricated report can prove it fails.
export function judge(e: AuditEvidence): RowResult[] {
  const { report: r, isMain, hostActions: host } = e;
  const shell = (row: ThreatId) =>
    Object.entries(SHELL)
      .filter(([, [of]]) => of === row)
      .map(([id, [, , ok]]) => {
        const s = r.shell[id] ?? { code: null, out: '' };
        return check(id, ok(s, e), s.out || `nothing (exit code ${s.code})`);
      });
  const sentinel = (place: string) => {
    const hits = r.hits[place] ?? [];
    // Main sees every group's folder in the project, read-only, by design.
    const own = place === 'otherGroup' && isMain ? hits.filter((w) => !w.startsWith(`${P}/`)) : hits;
    return check(
      `sentinel-${place}`,
      hits.length && !own.length ? null : !own.length,
      hits.length ? `seen at ${hits}` : 'not seen',
    );
  };
  const refused = (prefix: string) =>
    r.plants.filter((p) => p.id.startsWith(prefix)).map((p) => check(p.id, !p.ok, p.detail));
  const ipc = host.find((a) => a.action === 'ipcScan');
  const fifo = r.plants.find((p) => p.id === 'fifo-message')?.ok;
  const links = r.plants.filter((p) => p.ok && p.id.startsWith('link-')).length;
  const keyAt = r.hits.apiKey ?? [];

  const checks: Partial<Record<ThreatId, Check[]>> = {
    hostFiles: [...['data', 'store', 'hostTmp'].map(sentinel), ...(isMain ? [] : shell('hostFiles'))],
    otherGroup: [...['otherGroup', 'otherIpc', 'otherSession'].map(sentinel), ...refused('global-')],
    mainSecrets:
      isMain && r.shell['no-project']?.code === 0
        ? [...shell('mainSecrets'), ...['store', 'otherIpc'].map(sentinel)]
        : [check('project', null, 'no project mount (main only)')],
    apiKey: [
      check(
        'fingerprint',
        e.secrets ? !keyAt.length : null,
        keyAt.length
          ? `key found in ${keyAt}`
          : `not in process environments or ${r.scan.files} files${r.scan.truncated ? ' (scan limits hit)' : ''}`,
      ),
    ],
    network: [
      check('interfaces', r.interfaces?.every((i) => i === 'lo') ?? false, r.interfaces),
      // Through the egress proxy: refused with 403; direct: not connected.
      ...r.dials.map((d) =>
        check(
          d.id,
          d.id.startsWith('egress-')
            ? d.status === 403
            : d.outcome === 'skipped'
              ? null
              : d.outcome !== 'connected',
          d.detail,
        ),
      ),
      check('egress-dials', !e.proxyDials.length, `dialled: ${e.proxyDials}`),
    ],
    widen: [sentinel('config'), ...refused('project-')],
    // A FIFO in IPC must neither block nor crash the host's scan.
    malformed: [
      check(
        'ipc-fifo',
        fifo ? ipc?.outcome === 'done' : null,
        ipc ? `${ipc.outcome} ${ipc.detail}` : 'no FIFO',
      ),
    ],
    links: [
      check('plants', links > 0 || null, `${links} links planted`),
      ...(links
        ? [
            ...host.map((a) =>
              check(
                `host-${a.action}`,
                !['blocked', 'crashed'].includes(a.outcome),
                `${a.outcome} ${a.detail}`,
              ),
            ),
            check('decoy', !e.decoyChanges.length, e.decoyChanges.join('; ') || 'unchanged'),
            check('decoy-read', !e.decoyRead, e.decoyRead ? 'the IPC handler got a decoy file' : 'not read'),
          ]
        : []),
      ...refused('inbox-'),
    ],
    escalate: [...shell('escalate'), ...refused('rootfs-')],
  };
  return (Object.keys(THREATS) as ThreatId[]).map((id) => {
    const own = checks[id] ?? [check('scope', null, 'beyond a sandbox probe: see the README table')];
    const has = (s: Status) => own.some((c) => c.status === s);
    const verdict = !checks[id] ? 'not audited' : has('failed') ? 'failed' : has('held') ? 'held' : 'n/a';
    return { id, threat: THREATS[id], verdict, checks: own };
  });
}

export const anyFailed = (rows: RowResult[]) => rows.some((r) => r.verdict === 'failed');

export function renderTable(rows: RowResult[]): string {
  const width = Math.max(...rows.map((r) => r.threat.length));
  const line = (a: string, b: string, c: string) => `${a.padEnd(width)}  ${b.padEnd(11)}  ${c}`;
  const held = (r: RowResult) => `${r.checks.filter((c) => c.status === 'held').length} checks held`;
  const failed = rows.flatMap((r) =>
    r.checks.filter((c) => c.status === 'failed').map((c) => `  ${r.threat} / ${c.id}: ${c.detail}`),
  );
  return [
    line('threat', 'verdict', 'evidence'),
    ...rows.map((r) =>
      line(
        r.threat,
        r.verdict,
        { held: held(r), failed: 'see below' }[r.verdict as string] ?? r.checks[0]!.detail,
      ),
    ),
    ...(failed.length ? ['', 'Failed checks:', ...failed] : []),
    '',
  ].join('\n');
}
