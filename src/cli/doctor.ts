import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { HEALTH_KEY_PREFIX, type ChannelHealthRecord } from '../channel-health.js';
import { isWhatsAppLinked } from '../channels/whatsapp/link-state.js';
import type { Store } from '../db/store.js';
import { DEFAULT_SANDBOX_UID, type Config } from '../config.js';
import { readSecrets } from '../env-file.js';
import { createGroupPolicy, groupPolicyPath } from '../policy/group-policy.js';
import { loadNetworkPolicy, networkPolicyPath } from '../proxy/network-policy.js';
import { buildRuntime, detectionOrder } from '../sandbox/detect.js';
import { loadMountAllowlist } from '../sandbox/mount-allowlist.js';
import { RuntimeUnavailableError } from '../sandbox/runtime.js';
import { DEFAULT_LIMITS, detectCgroupSupport, type CgroupSupport } from '../sandbox/runtimes/cgroup.js';
import { todayUtc } from '../util/today.js';
import { withStore } from './args.js';

/** `fix`: what to do when the check fails; a `warnOnly` check doesn't fail doctor. */
type Result = { ok: boolean; detail: string; fix?: string; warnOnly?: boolean };
export type Check = Result & { name: string };
type Results = Record<string, Result | false | undefined>;

const result = (ok: boolean, detail: string, fix?: string, warnOnly?: true): Result => ({
  ok,
  detail,
  fix,
  warnOnly,
});
const fixFile = (file: string, until: string) =>
  `fix ${file} (format: README, "Security configuration"); until then ${until}`;

export async function runDoctor({ config, out, json }: { config: Config; out: Writable; json: boolean }) {
  const checks = await collectChecks(config);
  const failed = checks.filter((c) => !c.ok && !c.warnOnly).length;
  if (json) return (out.write(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`), failed ? 1 : 0);
  const color = (out as { isTTY?: boolean }).isTTY && !process.env.NO_COLOR;
  const paint = (code: number, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  for (const c of checks) {
    const mark = c.ok ? paint(32, 'ok  ') : c.warnOnly ? paint(33, 'warn') : paint(31, 'FAIL');
    out.write(`[${mark}] ${c.name}: ${c.detail}\n${!c.ok && c.fix ? `       fix: ${c.fix}\n` : ''}`);
  }
  out.write(failed ? `\n${failed} check(s) failed.\n` : '\nAll checks passed.\n');
  out.write('To test the sandbox boundary itself, live: nanoclaw audit\n');
  return failed ? 1 : 0;
}

export async function collectChecks(
  config: Config,
  options: {
    platform?: NodeJS.Platform;
    isRoot?: boolean;
    cgroups?: () => CgroupSupport;
    accounts?: AccountLookup;
    nodeVersion?: string;
  } = {},
): Promise<Check[]> {
  const { platform = process.platform, isRoot = process.getuid?.() === 0 } = options;
  const linux = platform === 'linux';
  const { kind, results: runtime } = await runtimeChecks(config, platform);
  const linked = isWhatsAppLinked(config.authDir);
  const node = options.nodeVersion ?? process.versions.node;
  const results: Results = {
    node: result(
      parseInt(node) >= 22,
      `Node ${node}`,
      'install Node.js 22 or 24 (https://nodejs.org, or `nvm install 24`); Node 20 is past its end of life',
    ),
    ...runtime,
    'sandbox user': linux && sandboxUidCheck(config, isRoot, options.accounts),
    // bwrap sandboxes of a root host run as the sandbox uid and resolve their mounts with it.
    permissions: linux && isRoot && (kind ?? 'bwrap') === 'bwrap' && permissionsCheck(config),
    'sandbox limits':
      linux && kind === 'bwrap' && sandboxLimitsCheck((options.cgroups ?? detectCgroupSupport)(), isRoot),
    credentials: credentialsCheck(config),
    whatsapp: result(
      linked,
      linked ? `linked (credentials in ${config.authDir})` : 'not linked (the local chat works without it)',
      'run `nanoclaw whatsapp-auth` and scan the QR code with WhatsApp > Linked devices',
      true,
    ),
    'local chat': result(
      true,
      `http://127.0.0.1:${config.localChannelPort}/ (token in ${path.join(config.dataDir, 'local-channel.token')})`,
    ),
    'mount allowlist': mountAllowlistCheck(config),
    'network policy': networkPolicyCheck(config),
    'group policy': groupPolicyCheck(config),
    disk: diskCheck(config),
    ...storeChecks(config),
  };
  return Object.entries(results).flatMap(([name, r]) => (r ? [{ name, ...r }] : []));
}

/** The configured runtime, else the first usable one in detection order (as `nanoclaw start` picks). */
async function runtimeChecks(
  config: Config,
  platform: NodeJS.Platform,
): Promise<{ kind?: string; results: Results }> {
  const configured = config.containerRuntime;
  const failures: Array<{ kind: string; reason: string; hint?: string }> = [];
  for (const kind of configured ? [configured] : detectionOrder(platform)) {
    const runtime = buildRuntime(kind, config);
    try {
      await runtime.ensureRunning();
    } catch (err) {
      const hint = err instanceof RuntimeUnavailableError ? err.hint : undefined;
      const message = err instanceof Error ? err.message : String(err);
      failures.push({ kind, hint, reason: hint ? message.replace(`. ${hint}`, '') : message });
      continue;
    }
    const built = await runtime.imageExists(config.containerImage);
    const what =
      kind === 'bwrap'
        ? `agent-runner ${built ? 'built for bwrap' : 'not built (container/agent-runner/dist)'}`
        : `${config.containerImage} ${built ? 'present' : 'not found'}`;
    const fix = 'run `nanoclaw build` (or `npm start`, which builds what is missing)';
    const artifact = { [kind === 'bwrap' ? 'agent' : 'image']: result(built, what, fix) };
    return { kind, results: { runtime: result(true, `${kind} is usable`), ...artifact } };
  }
  if (configured) {
    const { reason, hint } = failures[0]!;
    const unset = 'unset CONTAINER_RUNTIME to use whichever runtime is installed';
    const runtime = result(
      false,
      `CONTAINER_RUNTIME=${configured}: ${reason}`,
      hint ? `${hint} — or ${unset}` : unset,
    );
    return { kind: configured, results: { runtime } };
  }
  // Per runtime what is wrong, so an installed one that does not run gets its own fix.
  const reasons = failures.map((f) => `${f.kind}: ${f.reason}`).join('; ');
  const broken = failures.find((f) => f.hint && !f.reason.includes('not installed'));
  const fix = broken?.hint ?? installAdvice(platform);
  return { results: { runtime: result(false, `no usable sandbox runtime (${reasons})`, fix) } };
}

function installAdvice(platform: NodeJS.Platform): string {
  const one = 'install one sandbox runtime, then run `nanoclaw build`.';
  if (platform === 'linux')
    return `${one} Docker: \`sudo apt-get install docker.io && sudo systemctl enable --now docker\` (Fedora: \`sudo dnf install moby-engine\`); or bubblewrap, which needs no daemon: \`sudo apt-get install bubblewrap\`; or Podman: \`sudo apt-get install podman\``;
  if (platform === 'darwin')
    return `${one} Apple container (macOS 26+ on Apple silicon): the installer from https://github.com/apple/container/releases, then \`container system start\`; or Docker Desktop: \`brew install --cask docker\`, then open Docker.app once`;
  return 'NanoClaw runs on Linux and macOS; on Windows run it inside WSL2 with Docker (`sudo apt-get install docker.io`)';
}

/** Directories on the way to `target` that `who` cannot pass, and the target itself when unreadable. */
export function unreachableDirs(
  target: string,
  who: { uid: number; gid: number },
  stat: (p: string) => fs.Stats | undefined = (p) => fs.statSync(p, { throwIfNoEntry: false }),
): string[] {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  const blocked: string[] = [];
  for (let i = 0; i <= parts.length; i++) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    const st = stat(dir);
    if (!st) break; // a path not made yet is checked up to where it will be made
    const bits =
      who.uid === 0 ? 7 : st.uid === who.uid ? st.mode >> 6 : st.gid === who.gid ? st.mode >> 3 : st.mode;
    const need = i === parts.length ? 5 : 1; // r-x on the target, --x on the way
    if ((bits & need) !== need) blocked.push(dir);
  }
  return blocked;
}

function permissionsCheck({ sandboxUid: uid, projectRoot, home }: Config): Result {
  // The project (agent-runner at /app, main's view), the state, and Node itself are bound in.
  const targets = [...new Set([projectRoot, home, path.dirname(fs.realpathSync(process.execPath))])];
  const blocked = [...new Set(targets.flatMap((t) => unreachableDirs(t, { uid, gid: uid })))];
  const reach = blocked.length ? `cannot pass ${blocked.join(', ')}` : `can reach ${targets.join(', ')}`;
  return result(
    !blocked.length,
    `uid ${uid} (the bwrap sandbox user) ${reach}`,
    `\`chmod o+rx ${blocked.join(' ')}\` — or keep the project and NANOCLAW_HOME outside /root (e.g. /srv/nanoclaw), or use Docker`,
  );
}

function credentialsCheck({ envFile }: Config): Result {
  const secrets = readSecrets(envFile);
  const key = (['ANTHROPIC_API_KEY', 'CLAUDE_CODE_OAUTH_TOKEN', 'ANTHROPIC_AUTH_TOKEN'] as const).find(
    (k) => secrets[k],
  );
  const chmod = `\`chmod 600 ${envFile}\``;
  const upstream = secrets.ANTHROPIC_BASE_URL ? ` (upstream ${secrets.ANTHROPIC_BASE_URL})` : '';
  const open = (fs.statSync(envFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o077;
  const note = open ? `; note: the file is readable by other users — ${chmod}` : '';
  return result(
    !!key,
    key ? `${key} set in ${envFile}${upstream}${note}` : `no model credentials in ${envFile}`,
    `add a line ANTHROPIC_API_KEY=sk-ant-... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${envFile}, then ${chmod}`,
  );
}

function mountAllowlistCheck({ configDir }: Config): Result {
  const file = path.join(configDir, 'mount-allowlist.json');
  if (!fs.existsSync(file)) return result(true, 'none (no extra directories are mounted)');
  const roots = loadMountAllowlist(configDir)?.allowedRoots;
  if (!roots) return result(false, `${file} is invalid`, fixFile(file, 'no extra mounts are allowed'));
  return result(true, `${roots.length} allowed root(s) in ${file}`);
}

function networkPolicyCheck({ configDir }: Config): Result {
  const file = networkPolicyPath(configDir);
  const { source, file: policy, problem } = loadNetworkPolicy(configDir);
  const groups = Object.keys(policy.groups ?? {}).join(', ');
  if (source === 'missing')
    return result(
      true,
      'none (any public host; loopback, private and metadata addresses are always refused)',
    );
  if (source === 'invalid')
    return result(false, problem ?? `${file} is invalid`, fixFile(file, "every sandbox's egress is refused"));
  return result(true, `${file}: default rules${groups && ` + rules for ${groups}`}`);
}

function groupPolicyCheck({ configDir }: Config): Result {
  const file = groupPolicyPath(configDir);
  if (!fs.existsSync(file)) return result(true, 'none (default limits, no budgets, no sender allowlists)');
  // The policy reader itself decides validity: an invalid file makes it fall back to owner-only.
  if (!createGroupPolicy(configDir)('main').ownerOnly) return result(true, `${file} is valid`);
  let problem = 'its fields do not match the format';
  try {
    JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    problem = `not valid JSON: ${(err as Error).message}`;
  }
  return result(false, `${file}: ${problem}`, fixFile(file, 'only your own messages trigger the agent'));
}

function diskCheck({ home, projectRoot }: Config): Result | undefined {
  let stat;
  try {
    stat = fs.statfsSync(fs.existsSync(home) ? home : projectRoot);
  } catch {
    return undefined; // statfs unsupported
  }
  const gb = (stat.bavail * stat.bsize) / 1024 ** 3;
  return result(
    gb >= 2,
    `${gb.toFixed(1)} GB free`,
    'free at least 2 GB: the agent image and group files need room',
  );
}

function storeChecks(config: Config): Results {
  return withStore({ config }, false, (store) => {
    if (!store) return {};
    const folders = store.groups.all().map((g) => g.folder);
    const usage = store.usage
      .forDay(todayUtc())
      .map((u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`);
    return {
      groups: result(true, `${folders.length} registered (${folders.join(', ')})`),
      'usage today': result(true, usage.join('; ') || 'none'),
      'whatsapp connection': channelCheck(store.state.get(`${HEALTH_KEY_PREFIX}whatsapp`)),
      outbox: outboxCheck(store),
    };
  });
}

/** The last state the host recorded; doctor cannot see the live connection. */
function channelCheck(raw: string | undefined): Result | undefined {
  if (!raw) return undefined;
  const { state, since } = JSON.parse(raw) as ChannelHealthRecord;
  const fix = 'run `nanoclaw whatsapp-auth` (or link it from the local chat page), then restart the host';
  return result(
    state === 'up',
    `${state} since ${since}`,
    state === 'logged-out' ? fix : 'check the network',
    true,
  );
}

function outboxCheck(store: Store): Result | undefined {
  let failed: ReturnType<Store['outbox']['failed']>;
  try {
    failed = store.outbox.failed(3);
  } catch {
    return undefined; // a database the host has not migrated yet
  }
  const newest = failed.newest.map((f) => `${f.chatJid}: ${f.error}`).join('; ');
  const detail = failed.count
    ? `${failed.count} message(s) failed for good (newest: ${newest})`
    : 'no failed messages';
  return result(failed.count === 0, detail, 'see the reasons; these messages were not delivered', true);
}

/** The name of the passwd or group entry with this id, or null. */
export type AccountLookup = (db: 'passwd' | 'group', id: number) => string | null;

/** getent sees every account source (files, LDAP, sssd); /etc alone is the fallback without it. */
export const systemAccountLookup: AccountLookup = (db, id) => {
  const getent = spawnSync('getent', [db, String(id)], { encoding: 'utf8', timeout: 10_000 });
  if (getent.status === 0) return getent.stdout.split(':')[0] || `#${id}`;
  if (getent.status === 2) return null; // key not found
  let lines: string[] = [];
  try {
    lines = fs.readFileSync(`/etc/${db}`, 'utf8').split('\n');
  } catch {
    /* no fallback either */
  }
  return lines.map((l) => l.split(':')).find((f) => f[2] === String(id))?.[0] ?? null;
};

/**
 * A root host's sandboxes run as config.sandboxUid (gid the same): if a person's account had it,
 * every file, process and socket of a sandbox would be theirs, and theirs the sandbox's.
 */
export function sandboxUidCheck(config: Config, isRoot: boolean, lookup = systemAccountLookup): Result {
  const uid = config.sandboxUid;
  if (!isRoot)
    return result(
      true,
      `sandboxes run as you (uid ${process.getuid?.()}); SANDBOX_UID applies only to a root host`,
    );
  const taken = (id: number) =>
    (['user', 'group'] as const).flatMap((what) => {
      const name = lookup(what === 'user' ? 'passwd' : 'group', id);
      return name === null ? [] : [`${what} "${name}"`];
    });
  const owners = taken(uid);
  if (!owners.length) return result(true, `sandboxes run as uid/gid ${uid}, which no account has`);
  // Suggest a free id below 61184, where systemd's dynamic users begin.
  const free = Array.from({ length: 184 }, (_, i) => DEFAULT_SANDBOX_UID + i).find((id) => !taken(id).length);
  const example = free ? ` (e.g. SANDBOX_UID=${free}; \`getent passwd ${free}\` prints nothing)` : '';
  return result(
    false,
    `sandboxes run as uid/gid ${uid}, which belongs to ${owners.join(' and ')} on this host`,
    `set SANDBOX_UID in ${config.envFile} to a uid no user or group has${example}, then restart nanoclaw`,
  );
}

/** Whether bwrap sandboxes get the pids and memory caps docker gives its containers. */
export function sandboxLimitsCheck(support: CgroupSupport, isRoot: boolean): Result {
  const { pidsMax, memoryBytes } = DEFAULT_LIMITS;
  const limits = `pids ≤ ${pidsMax} and memory ≤ ${memoryBytes / 1024 ** 3} GiB per bwrap sandbox`;
  if (!support.missing.length) return result(true, `${limits} (cgroup ${support.version})`);
  const docker = 'or use Docker (CONTAINER_RUNTIME=docker), which sets both limits itself';
  return result(
    false,
    `bwrap sandboxes run without ${support.missing.join(' and ')} limits (${support.reason ?? 'no usable cgroups'})`,
    isRoot
      ? `bwrap needs cgroup v2 with the pids and memory controllers (systemd.unified_cgroup_hierarchy=1 on the kernel command line) or writable cgroup v1 pids and memory hierarchies; ${docker}`
      : `run nanoclaw as root on a machine with cgroup v2 (bwrap sandboxes then get their own cgroup under /sys/fs/cgroup/nanoclaw), ${docker}`,
    true,
  );
}
