import { CONTAINER_PATHS as C } from '../sandbox/mount-plan.js';
import type { HostAction } from './run-audit.js';
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
type ThreatId = keyof typeof THREATS;

type Status = 'held' | 'failed' | 'n/a';

export type AuditEvidence = {
  isMain: boolean;
  expectedUid: number;
  report: ProbeReport;
  secrets: number;
  hostActions: HostAction[];
  decoyChanged: boolean;
  proxyDials: string[];
};

type Probe = [
  ThreatId,
  string,
  (s: { code: number | null; out: string }, e: AuditEvidence) => boolean | null,
];
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
// Run in the sandbox; null is n/a.
export const SHELL: Record<string, Probe> = {
  'no-project': ['hostFiles', `test -d ${P}`, (s) => s.code !== 0],
  'env-masked': ['mainSecrets', `test -s ${P}/.env && echo .env has content`, (s) => !s.out],
  uid: ['escalate', 'id -u', (s, e) => s.out !== '0' && s.out === String(e.expectedUid)],
  capabilities: status('Cap(Eff|Prm)', (out) => !/\s0*[1-9a-f]/.test(out)),
  'no-new-privs': status('NoNewPrivs', (out) => out.endsWith('1')),
  seccomp: status('Seccomp', (out) => !out.endsWith('0')),
  userns: ['escalate', 'unshare -U true 2>&1', (s) => (s.code === 127 ? null : s.code !== 0)],
  'pids-limit': limit('pids.max', 'pids/pids.max'),
  'memory-limit': limit('memory.max', 'memory/memory.limit_in_bytes'),
  'runtime-socket': [
    'escalate',
    'ls /run/docker.sock /run/podman/podman.sock /run/containerd/containerd.sock',
    (s) => !s.out,
  ],
};

const check = (id: string, ok: boolean | null, detail: unknown) => ({
  id,
  status: (ok === null ? 'n/a' : ok ? 'held' : 'failed') as Status,
  detail: String(detail),
});

// Pure, so fabricated evidence can prove it fails.
export function judge(e: AuditEvidence) {
  const { report: r, isMain } = e;
  const shell = (row: ThreatId) =>
    Object.entries(SHELL)
      .filter(([, [of]]) => of === row)
      .map(([id, [, , ok]]) => {
        const s = r.shell[id] ?? { code: null, out: '' };
        return check(id, ok(s, e), s.out || `exit code ${s.code}`);
      });
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
  const checks: Partial<Record<ThreatId, ReturnType<typeof check>[]>> = {
    hostFiles: [...['data', 'store', 'hostTmp'].map(sentinel), ...(isMain ? [] : shell('hostFiles'))],
    otherGroup: [...['otherGroup', 'otherIpc', 'otherSession'].map(sentinel), ...refused('global-')],
    mainSecrets: isMain
      ? [...shell('mainSecrets'), ...['store', 'otherIpc'].map(sentinel)]
      : [check('project', null, 'no project mount')],
    apiKey: [check('fingerprint', e.secrets ? !keyAt.length : null, `key found in ${keyAt}`)],
    network: [
      check('interfaces', r.interfaces?.every((i) => i === 'lo') ?? false, r.interfaces),
      ...r.dials.map((d) =>
        check(d.id, d.id.startsWith('egress-') ? d.status === 403 : d.outcome !== 'connected', d.detail),
      ),
      check('egress-dials', !e.proxyDials.length, `dialled: ${e.proxyDials}`),
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
    escalate: [...shell('escalate'), ...refused('rootfs-')],
  };
  return (Object.keys(THREATS) as ThreatId[]).map((id) => {
    const own = checks[id] ?? [];
    const has = (s: Status) => own.some((c) => c.status === s);
    const verdict = !checks[id] ? 'not audited' : has('failed') ? 'failed' : has('held') ? 'held' : 'n/a';
    return { id, threat: THREATS[id], verdict, checks: own };
  });
}

export function renderTable(rows: ReturnType<typeof judge>) {
  const width = Math.max(...rows.map((r) => r.threat.length));
  return rows
    .map((r) => {
      const why = r.checks.filter((c) => r.verdict !== 'held' && c.status === r.verdict);
      return `${r.threat.padEnd(width)}  ${r.verdict.padEnd(11)}  ${why.map((c) => `${c.id}: ${c.detail}`).join('; ')}\n`;
    })
    .join('');
}
