import type { RuntimeKind } from '../config.js';
import type { SentinelPlace } from './fixtures.js';
import type { HostActionsOutcome } from './host-actions.js';
import type { PlantStep, ProbeReport } from './types.js';

/**
 * The threat rows of README.md's "Security model" table (same wording and order, so the audit's
 * output can be read next to it), and how each is judged from the evidence. Pure: the audit collects, this decides, so a fabricated report can prove it fails.
 */
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

export type CheckStatus = 'held' | 'failed' | 'n/a';
export type RowVerdict = CheckStatus | 'not audited';

export interface Check {
  row: ThreatId;
  id: string;
  status: CheckStatus;
  detail: string;
}

export interface RowResult {
  id: ThreatId;
  threat: string;
  verdict: RowVerdict;
  checks: Check[];
}

export interface AuditEvidence {
  runtime: RuntimeKind;
  isMain: boolean;
  expectedUid: number;
  projectPath: string;
  report: ProbeReport;
  /** The real credentials from .env: compared here, never printed. */
  secretValues: string[];
  plants: PlantStep[];
  hostActions: HostActionsOutcome;
  decoyChanges: string[];
  decoyMarker: string;
  /** Connections that reached the audit's loopback canary listener. */
  canaryConnections: number;
  /** Targets the egress proxy tried to dial (the audit's connector never dials: it records). */
  proxyDials: string[];
  /** bwrap: limits read from the host side of the sandbox's cgroup, which it cannot see itself. */
  hostLimits: { pids: string | null; memory: string | null } | null;
}

const NOT_AUDITED: Partial<Record<ThreatId, string>> = {
  speaksFor: 'needs the IPC handlers and a chat: test/unit/ipc-watcher.test.ts',
  proxySockets: 'about other local accounts, not the sandbox: test/unit/proxy-manager.test.ts',
  spend: 'needs model traffic: test/e2e/security-budget.test.ts',
  flood: 'needs a chat: test/e2e/reliability-flood.test.ts',
  stranger: 'a policy of the message loop, not of the sandbox',
  localChat: 'about the local web chat, not the sandbox',
  stuck: 'needs a running host: test/e2e/reliability-*.test.ts',
  injection: 'not mitigated: isolation bounds it',
  mainCompromised: 'by design: main is the admin',
};

const UNLIMITED = 2 ** 60;
const isLimited = (value: string | null) => value !== null && value !== 'max' && Number(value) < UNLIMITED;
const allZero = (hex: string | null) => hex !== null && /^0+$/.test(hex);

export function judge(e: AuditEvidence): RowResult[] {
  const checks: Check[] = [];
  const add = (row: ThreatId, id: string, status: CheckStatus, detail: string) =>
    checks.push({ row, id, status, detail });
  const { report } = e;

  // Sentinels: each must be invisible, by content and at its host path.
  const sentinel = (row: ThreatId, place: SentinelPlace, what: string) => {
    let hits = report.sentinelHits.find((h) => h.id === place)?.where ?? [];
    if (place === 'otherGroup' && e.isMain) {
      const direct = hits.filter((w) => !w.startsWith(`${e.projectPath}/`));
      if (hits.length > 0 && direct.length === 0)
        return add(row, `sentinel-${place}`, 'n/a', `main reads ${what} in the project read-only, by design`);
      hits = direct;
    }
    if (hits.length > 0) add(row, `sentinel-${place}`, 'failed', `${what} visible: ${hits.join(', ')}`);
    else add(row, `sentinel-${place}`, 'held', `${what} not visible`);
  };
  const plantResult = (id: string) => report.plants.find((p) => p.id === id);
  const mustFail = (row: ThreatId, id: string, what: string) => {
    const result = plantResult(id);
    if (!result) return;
    if (result.ok) add(row, id, 'failed', `${what} succeeded`);
    else add(row, id, 'held', `${what} refused (${result.detail})`);
  };

  // An agent reads host files.
  sentinel('hostFiles', 'data', 'a file in data/');
  sentinel('hostFiles', 'store', 'a file in store/');
  sentinel('hostFiles', 'hostTmp', "a file in the host's temp dir");
  if (!e.isMain)
    add(
      'hostFiles',
      'no-project',
      report.project.visible ? 'failed' : 'held',
      report.project.visible ? 'the project is mounted for a non-main group' : 'the project is not mounted',
    );

  // Another group's files, IPC or session.
  sentinel('otherGroup', 'otherGroup', "another group's folder");
  sentinel('otherGroup', 'otherIpc', "another group's IPC");
  sentinel('otherGroup', 'otherSession', "another group's session");
  mustFail('otherGroup', 'global-write', 'writing the shared memory folder');

  // Main: .env, the WhatsApp credentials (store/) and every group's state (data/) masked.
  if (!e.isMain) add('mainSecrets', 'main-only', 'n/a', 'the audited group is not main');
  else if (!report.project.visible) add('mainSecrets', 'project', 'n/a', 'no project mount on this runtime');
  else {
    const { env, store, data } = report.project;
    add('mainSecrets', 'env-masked', env === 'content' ? 'failed' : 'held', `project .env is ${env}`);
    for (const [name, list] of [
      ['store', store],
      ['data', data],
    ] as const) {
      const shown = list ?? [];
      add(
        'mainSecrets',
        `${name}-masked`,
        shown.length ? 'failed' : 'held',
        shown.length ? `project ${name}/ shows ${shown.slice(0, 5).join(', ')}` : `project ${name}/ is empty`,
      );
    }
    sentinel('mainSecrets', 'store', 'a file in store/');
    sentinel('mainSecrets', 'otherIpc', "another group's IPC");
  }

  // The API key: fingerprints in everything readable, and credential-named variables compared.
  if (e.secretValues.length === 0) add('apiKey', 'key', 'n/a', 'no credential in .env to look for');
  else {
    const { files, bytes, processes, truncated } = report.scan;
    const scope = `${processes} process environments, ${files} files (${(bytes / 2 ** 20).toFixed(1)} MiB)${truncated ? ', stopped at the scan limits' : ''}`;
    const hits = report.secretHits.flatMap((h) => h.where);
    add(
      'apiKey',
      'fingerprint',
      hits.length ? 'failed' : 'held',
      hits.length ? `key found in ${hits.join(', ')}` : `not in ${scope}`,
    );
    const leaked = report.credentials.filter((c) => e.secretValues.some((s) => c.value.includes(s)));
    add(
      'apiKey',
      'environment',
      leaked.length ? 'failed' : 'held',
      leaked.length
        ? `key in ${leaked.map((c) => `${c.name} (${c.where})`).join(', ')}`
        : `${report.credentials.length} credential-named variables, none the key`,
    );
  }

  // Network: loopback only; nothing direct gets through; the egress proxy refuses what it must.
  const ifaces = report.interfaces;
  if (ifaces === null) add('network', 'interfaces', 'failed', 'could not list the network interfaces');
  else {
    const others = ifaces.filter((i) => i !== 'lo');
    add(
      'network',
      'interfaces',
      others.length ? 'failed' : 'held',
      `interfaces: ${ifaces.join(', ') || 'none'}`,
    );
  }
  for (const d of report.direct)
    add(
      'network',
      `direct-${d.id}`,
      d.outcome === 'connected' ? 'failed' : d.outcome === 'skipped' ? 'n/a' : 'held',
      d.detail,
    );
  add(
    'network',
    'canary',
    e.canaryConnections ? 'failed' : 'held',
    `${e.canaryConnections} connections reached the host's loopback canary`,
  );
  for (const r of report.egress)
    add(
      'network',
      `egress-${r.id}`,
      r.status === 403 ? 'held' : 'failed',
      `${r.status ?? 'no status'}: ${r.detail}`,
    );
  add(
    'network',
    'egress-dials',
    e.proxyDials.length ? 'failed' : 'held',
    e.proxyDials.length
      ? `the egress proxy dialled ${e.proxyDials.join(', ')}`
      : 'the egress proxy dialled nothing',
  );

  // Own mounts or limits: the config dir is never mounted; main cannot write the project.
  sentinel('widen', 'config', 'a file in the config dir');
  mustFail('widen', 'project-write', 'writing the project');

  // IPC that would trip a careless reader (a FIFO, links) must neither block nor crash the host.
  const ipc = e.hostActions.results.find((r) => r.action === 'ipcScan');
  if (!plantResult('fifo-message')?.ok) add('malformed', 'ipc-fifo', 'n/a', 'the FIFO could not be planted');
  else if (ipc)
    add('malformed', 'ipc-fifo', ipc.outcome === 'done' ? 'held' : 'failed', `IPC scan: ${ipc.detail}`);

  // Links: the host acts on every planted entry and touches nothing outside.
  const planted = e.plants.filter((p) => p.expect === 'ok' && p.op === 'symlink' && plantResult(p.id)?.ok);
  if (planted.length === 0) add('links', 'plants', 'n/a', 'no link could be planted');
  else {
    add('links', 'plants', 'held', `${planted.length} links planted`);
    for (const r of e.hostActions.results) {
      const bad = r.outcome === 'blocked' || r.outcome === 'crashed';
      add(
        'links',
        `host-${r.action}`,
        bad ? 'failed' : 'held',
        r.detail ? `${r.outcome}: ${r.detail}` : r.outcome,
      );
    }
    const changes = e.decoyChanges;
    add(
      'links',
      'decoy',
      changes.length ? 'failed' : 'held',
      changes.length ? changes.join('; ') : 'decoy folder unchanged',
    );
    const read = e.hostActions.payloads.filter((p) => p.includes(e.decoyMarker));
    add(
      'links',
      'decoy-read',
      read.length ? 'failed' : 'held',
      read.length ? 'the IPC handler got a decoy file' : 'no decoy file was read',
    );
  }
  for (const id of ['inbox-write', 'inbox-link', 'inbox-move', 'inbox-input-write'])
    mustFail('links', id, `${id.replace('inbox-', '')} in the read-only inbox`);

  // Escalation and exhaustion.
  const s = report.status;
  add(
    'escalate',
    'uid',
    report.uid !== 0 && report.uid === e.expectedUid ? 'held' : 'failed',
    `uid ${report.uid} (expected ${e.expectedUid})`,
  );
  add(
    'escalate',
    'capabilities',
    s.capEff === null ? 'n/a' : allZero(s.capEff) && allZero(s.capPrm) ? 'held' : 'failed',
    `CapEff ${s.capEff}, CapPrm ${s.capPrm}`,
  );
  add(
    'escalate',
    'no-new-privs',
    s.noNewPrivs === null ? 'n/a' : s.noNewPrivs === '1' ? 'held' : 'failed',
    `NoNewPrivs ${s.noNewPrivs}`,
  );
  add(
    'escalate',
    'seccomp',
    s.seccomp === null ? 'n/a' : s.seccomp === '0' ? 'failed' : 'held',
    `Seccomp mode ${s.seccomp}`,
  );
  const u = report.userns;
  add(
    'escalate',
    'userns',
    u.result === 'refused' ? 'held' : u.result === 'allowed' ? 'failed' : 'n/a',
    u.detail,
  );
  const ro = (report.rootMount ?? '').split(',').includes('ro');
  add('escalate', 'root-readonly', ro ? 'held' : 'failed', `root mounted ${report.rootMount ?? 'unknown'}`);
  mustFail('escalate', 'rootfs-usr', 'writing /usr');
  mustFail('escalate', 'rootfs-etc', 'writing /etc');
  for (const kind of ['pids', 'memory'] as const) {
    const inside = report.cgroup[kind];
    const outside = e.hostLimits?.[kind] ?? null;
    if (isLimited(inside)) add('escalate', `${kind}-limit`, 'held', `${kind} limit ${inside}`);
    else if (isLimited(outside))
      add('escalate', `${kind}-limit`, 'held', `${kind} limit ${outside} (seen from the host)`);
    else if (inside === null && outside === null)
      add('escalate', `${kind}-limit`, 'n/a', `no ${kind} limit visible on this runtime`);
    else add('escalate', `${kind}-limit`, 'failed', `no ${kind} limit (${inside ?? outside})`);
  }
  add(
    'escalate',
    'runtime-socket',
    report.runtimeSockets.length ? 'failed' : 'held',
    report.runtimeSockets.length
      ? `visible: ${report.runtimeSockets.join(', ')}`
      : 'no container runtime socket',
  );

  return (Object.keys(THREATS) as ThreatId[]).map((id) => {
    const own = checks.filter((c) => c.row === id);
    const verdict: RowVerdict =
      own.length === 0
        ? 'not audited'
        : own.some((c) => c.status === 'failed')
          ? 'failed'
          : own.some((c) => c.status === 'held')
            ? 'held'
            : 'n/a';
    const checksOrNote = own.length
      ? own
      : [{ row: id, id: 'scope', status: 'n/a' as const, detail: NOT_AUDITED[id] ?? '' }];
    return { id, threat: THREATS[id], verdict, checks: checksOrNote };
  });
}

export function anyFailed(rows: RowResult[]): boolean {
  return rows.some((r) => r.verdict === 'failed');
}

/** The plain table: one line per threat, then what failed (and with `verbose`, every check). */
export function renderTable(rows: RowResult[], verbose = false): string {
  const width = Math.max(...rows.map((r) => r.threat.length), 'threat'.length);
  const pad = (text: string, n: number) => text + ' '.repeat(Math.max(0, n - text.length));
  const summary = (r: RowResult) => {
    if (r.verdict === 'not audited') return r.checks[0]?.detail ?? '';
    if (r.verdict === 'failed')
      return `failed: ${r.checks
        .filter((c) => c.status === 'failed')
        .map((c) => c.id)
        .join(', ')}`;
    if (r.verdict === 'n/a') return r.checks[0]?.detail ?? '';
    const held = r.checks.filter((c) => c.status === 'held').length;
    const na = r.checks.length - held;
    return `${held} check${held === 1 ? '' : 's'} held${na ? `, ${na} n/a` : ''}`;
  };
  const lines = [`${pad('threat', width)}  ${pad('verdict', 11)}  evidence`];
  for (const r of rows) lines.push(`${pad(r.threat, width)}  ${pad(r.verdict, 11)}  ${summary(r)}`);
  const shown = rows.flatMap((r) =>
    r.checks.filter((c) => verbose || c.status === 'failed').map((c) => ({ r, c })),
  );
  if (shown.length) {
    lines.push('', verbose ? 'Checks:' : 'Failed checks:');
    for (const { r, c } of shown) lines.push(`  [${c.status}] ${r.threat} / ${c.id}: ${c.detail}`);
  }
  return `${lines.join('\n')}\n`;
}
