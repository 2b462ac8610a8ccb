import type { HostActionsOutcome } from './host-actions.js';
import type { PlantStep, ProbeReport } from './probe.js';

/** The threat rows of README.md's "Security model" table, in its words and order. */
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

const NOT_AUDITED: Partial<Record<ThreatId, string>> = {
  speaksFor: 'see test/unit/ipc-watcher.test.ts',
  proxySockets: 'about other local accounts: test/unit/proxy-manager.test.ts',
  spend: 'needs model traffic: test/e2e/model-budget.test.ts',
  flood: 'needs a chat: test/e2e/outbound-flood.test.ts',
  stranger: 'a policy of the message loop',
  localChat: 'about the local web chat',
  stuck: 'needs a running host: test/e2e/host-*.test.ts, test/e2e/sandbox-crash.test.ts',
  injection: 'not mitigated: isolation bounds it',
  mainCompromised: 'by design: main is the admin',
};

export type CheckStatus = 'held' | 'failed' | 'n/a';
export type Check = { id: string; status: CheckStatus; detail: string };
export type RowResult = {
  id: ThreatId;
  threat: string;
  verdict: CheckStatus | 'not audited';
  checks: Check[];
};

export interface AuditEvidence {
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
  canaryConnections: number;
  /** Targets the egress proxy tried to dial (the audit's connector only records). */
  proxyDials: string[];
  /** bwrap: limits from the host side of the sandbox's cgroup (/sys is hidden inside). */
  hostLimits: { pids: string | null; memory: string | null } | null;
}

const limited = (value: string | null) => value !== null && value !== 'max' && Number(value) < 2 ** 60;
const zero = (hex: string | null) => hex !== null && /^0+$/.test(hex);
const known = (value: string | null, ok: boolean) => (value === null ? null : ok);
/** `ok` null: n/a. */
const check = (id: string, ok: boolean | null, detail: unknown): Check => {
  return { id, status: ok === null ? 'n/a' : ok ? 'held' : 'failed', detail: String(detail) };
};

/** Pure: the audit collects, this decides, so a fabricated report can prove it fails. */
export function judge(e: AuditEvidence): RowResult[] {
  const { report: r, isMain } = e;
  const sentinel = (place: string) => {
    const hits = r.sentinelHits.find((h) => h.id === place)?.where ?? [];
    // Main sees every group's folder in the project, read-only, by design.
    const own =
      place === 'otherGroup' && isMain ? hits.filter((w) => !w.startsWith(`${e.projectPath}/`)) : hits;
    return check(
      `sentinel-${place}`,
      hits.length && !own.length ? null : !own.length,
      hits.length ? `seen at ${hits}` : 'not seen',
    );
  };
  const plant = (id: string) => r.plants.find((p) => p.id === id);
  const mustFail = (...ids: string[]) =>
    ids.flatMap((id) => [plant(id)].flatMap((p) => (p ? [check(id, !p.ok, p.detail)] : [])));
  const limit = (kind: 'pids' | 'memory') => {
    const seen = [r.cgroup[kind], e.hostLimits?.[kind] ?? null]; // inside, and from the host
    const ok = seen.some(limited) || (seen.every((v) => v === null) ? null : false);
    return check(`${kind}-limit`, ok, `inside ${seen[0]}, from the host ${seen[1]}`);
  };
  const ipc = e.hostActions.results.find((a) => a.action === 'ipcScan');
  const fifo = plant('fifo-message')?.ok;
  const links = e.plants.filter((p) => p.expect === 'ok' && p.op === 'symlink' && plant(p.id)?.ok).length;
  const keyAt = r.secretHits.flatMap((h) => h.where);
  const scanned = `not in /proc/*/environ or ${r.scan.files} files${r.scan.truncated ? ' (scan limits hit)' : ''}`;
  const decoyRead = e.hostActions.payloads.some((p) => p.includes(e.decoyMarker));
  const { capEff, capPrm, noNewPrivs, seccomp } = r.status;
  const { project } = r;

  const checks: Partial<Record<ThreatId, (Check | false)[]>> = {
    hostFiles: [
      ...['data', 'store', 'hostTmp'].map(sentinel),
      !isMain && check('no-project', !project.visible, `project mounted: ${project.visible}`),
    ],
    otherGroup: [...['otherGroup', 'otherIpc', 'otherSession'].map(sentinel), ...mustFail('global-write')],
    mainSecrets:
      isMain && project.visible
        ? [
            check('env-masked', project.env !== 'content', `.env is ${project.env}`),
            check('store-masked', !project.store?.length, project.store),
            check('data-masked', !project.data?.length, project.data),
            ...['store', 'otherIpc'].map(sentinel),
          ]
        : [check('project', null, 'no project mount (main only)')],
    apiKey: [
      check(
        'fingerprint',
        e.secretValues.length ? !keyAt.length : null,
        keyAt.length ? `key found in ${keyAt}` : scanned,
      ),
    ],
    network: [
      check('interfaces', r.interfaces?.every((i) => i === 'lo') ?? false, r.interfaces),
      ...r.direct.map((d) =>
        check(`direct-${d.id}`, d.outcome === 'skipped' ? null : d.outcome !== 'connected', d.detail),
      ),
      check('canary', !e.canaryConnections, `${e.canaryConnections} connections`),
      ...r.egress.map((x) => check(`egress-${x.id}`, x.status === 403, `${x.status}: ${x.detail}`)),
      check('egress-dials', !e.proxyDials.length, `dialled: ${e.proxyDials}`),
    ],
    widen: [sentinel('config'), ...mustFail('project-write')],
    // A FIFO or links in IPC must neither block nor crash the host's scan.
    malformed: [
      (!!ipc || !fifo) &&
        check(
          'ipc-fifo',
          fifo ? ipc?.outcome === 'done' : null,
          ipc ? `${ipc.outcome} ${ipc.detail}` : 'no FIFO',
        ),
    ],
    links: [
      check('plants', links ? true : null, `${links} links planted`),
      ...(links ? e.hostActions.results : []).map((a) =>
        check(
          `host-${a.action}`,
          a.outcome !== 'blocked' && a.outcome !== 'crashed',
          `${a.outcome} ${a.detail}`,
        ),
      ),
      !!links && check('decoy', !e.decoyChanges.length, e.decoyChanges.join('; ') || 'unchanged'),
      !!links && check('decoy-read', !decoyRead, decoyRead ? 'the IPC handler got a decoy file' : 'not read'),
      ...mustFail('inbox-write', 'inbox-link', 'inbox-move', 'inbox-input-write'),
    ],
    escalate: [
      check('uid', r.uid !== 0 && r.uid === e.expectedUid, `${r.uid} (expected ${e.expectedUid})`),
      check('capabilities', known(capEff, zero(capEff) && zero(capPrm)), `CapEff ${capEff}`),
      check('no-new-privs', known(noNewPrivs, noNewPrivs === '1'), `NoNewPrivs ${noNewPrivs}`),
      check('seccomp', known(seccomp, seccomp !== '0'), `Seccomp mode ${seccomp}`),
      check(
        'userns',
        r.userns.result === 'unavailable' ? null : r.userns.result === 'refused',
        r.userns.detail,
      ),
      check('root-readonly', !!r.rootMount?.split(',').includes('ro'), r.rootMount),
      ...mustFail('rootfs-usr', 'rootfs-etc'),
      limit('pids'),
      limit('memory'),
      check('runtime-socket', !r.runtimeSockets.length, `runtime sockets: ${r.runtimeSockets}`),
    ],
  };
  return (Object.keys(THREATS) as ThreatId[]).map((id) => {
    const own = checks[id]?.filter((c) => c !== false) ?? [];
    const has = (s: CheckStatus) => own.some((c) => c.status === s);
    const verdict = !own.length ? 'not audited' : has('failed') ? 'failed' : has('held') ? 'held' : 'n/a';
    return {
      id,
      threat: THREATS[id],
      verdict,
      checks: own.length ? own : [check('scope', null, NOT_AUDITED[id])],
    };
  });
}

export const anyFailed = (rows: RowResult[]) => rows.some((r) => r.verdict === 'failed');

/** One line per threat, then the failed checks (every check with `verbose`). */
export function renderTable(rows: RowResult[], verbose = false): string {
  const width = Math.max(...rows.map((r) => r.threat.length));
  const summary = ({ verdict, checks }: RowResult) => {
    const ids = (s: CheckStatus) => checks.filter((c) => c.status === s).map((c) => c.id);
    if (verdict === 'failed') return `failed: ${ids('failed').join(', ')}`;
    return verdict === 'held' ? `${ids('held').length} checks held` : (checks[0]?.detail ?? '');
  };
  const shown = rows.flatMap((r) =>
    r.checks
      .filter((c) => verbose || c.status === 'failed')
      .map((c) => `  [${c.status}] ${r.threat} / ${c.id}: ${c.detail}`),
  );
  const lines = [
    `${'threat'.padEnd(width)}  verdict      evidence`,
    ...rows.map((r) => `${r.threat.padEnd(width)}  ${r.verdict.padEnd(11)}  ${summary(r)}`),
    ...(shown.length ? ['', 'Checks:', ...shown] : []),
  ];
  return `${lines.join('\n')}\n`;
}
