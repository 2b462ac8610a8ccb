import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { HEALTH_KEY_PREFIX, type ChannelHealthRecord } from '../channel-health.js';
import { linkedAccountJid } from '../channels/whatsapp/link-state.js';
import { DEFAULT_SANDBOX_UID, type Config } from '../config.js';
import { readSecrets } from '../env-file.js';
import { createGroupPolicy, groupPolicyPath } from '../policy/group-policy.js';
import { loadNetworkPolicy, networkPolicyPath } from '../proxy/network-policy.js';
import { buildRuntime, detectionOrder } from '../sandbox/detect.js';
import { loadMountAllowlist } from '../sandbox/mount-allowlist.js';
import type { RuntimeUnavailableError } from '../sandbox/runtime.js';
import { DEFAULT_LIMITS, detectCgroupSupport, type CgroupSupport } from '../sandbox/runtimes/cgroup.js';
import { todayUtc } from '../util/today.js';
import { withStore } from './args.js';

// `fix`: what to do when it fails; a `warnOnly` check does not fail doctor.
const result = (ok: boolean, detail: string, fix?: string, warnOnly?: true) => ({
  ok,
  detail,
  fix,
  warnOnly,
});
type Result = ReturnType<typeof result>;
export type Check = Result & { name: string };
type Results = Record<string, Result | false | undefined>;

export async function runDoctor({ config, out, json }: { config: Config; out: Writable; json: boolean }) {
  const checks = await collectChecks(config);
  const failed = checks.filter((c) => !c.ok && !c.warnOnly).length;
  if (json) out.write(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  else {
    const paint = (code: number, text: string) =>
      (out as { isTTY?: boolean }).isTTY && !process.env.NO_COLOR ? `\x1b[${code}m${text}\x1b[0m` : text;
    for (const c of checks) {
      const mark = c.ok ? paint(32, 'ok  ') : c.warnOnly ? paint(33, 'warn') : paint(31, 'FAIL');
      out.write(`[${mark}] ${c.name}: ${c.detail}\n${!c.ok && c.fix ? `       fix: ${c.fix}\n` : ''}`);
    }
    out.write(
      `\n${failed ? `${failed} check(s) failed.` : 'All checks passed.'}\nTo test the sandbox boundary live: nanoclaw audit\n`,
    );
  }
  return failed ? 1 : 0;
}

export async function collectChecks(
  config: Config,
  opts: {
    platform?: NodeJS.Platform;
    isRoot?: boolean;
    cgroups?: () => CgroupSupport;
    accounts?: AccountLookup;
    nodeVersion?: string;
  } = {},
): Promise<Check[]> {
  const { platform = process.platform, isRoot = process.getuid?.() === 0 } = opts;
  const { configDir, envFile } = config;
  const linux = platform === 'linux';
  const [kind, runtime] = await runtimeChecks(config, platform);
  const node = opts.nodeVersion ?? process.versions.node;
  const key = Object.keys(readSecrets(envFile)).find((k) => /KEY|TOKEN/.test(k));
  const chmod = `\`chmod 600 ${envFile}\``;
  const shared = (fs.statSync(envFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o077;
  const jid = linkedAccountJid(config.authDir);
  const net = loadNetworkPolicy(configDir);
  const mounts = path.join(configDir, 'mount-allowlist.json');
  const policy = groupPolicyPath(configDir);
  const { bavail, bsize } = fs.statfsSync(fs.existsSync(config.home) ? config.home : config.projectRoot);
  const gb = (bavail * bsize) / 1024 ** 3;
  const results: Results = {
    node: result(+node.split('.')[0]! >= 22, `Node ${node}`, 'install Node.js 22 or 24 (`nvm install 24`)'),
    ...runtime,
    'sandbox user': linux && sandboxUidCheck(config, isRoot, opts.accounts),
    // bwrap sandboxes of a root host run as the sandbox uid and resolve their mounts with it.
    permissions: linux && isRoot && (kind ?? 'bwrap') === 'bwrap' && permissionsCheck(config),
    'sandbox limits':
      linux && kind === 'bwrap' && sandboxLimitsCheck((opts.cgroups ?? detectCgroupSupport)(), isRoot),
    credentials: result(
      !!key,
      key
        ? `${key} set in ${envFile}${shared ? `; readable by other users: ${chmod}` : ''}`
        : `no model credentials in ${envFile}`,
      `add ANTHROPIC_API_KEY=sk-ant-... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${envFile}, then ${chmod}`,
    ),
    whatsapp: result(!!jid, jid ? `linked as ${jid}` : 'not linked', 'run `nanoclaw whatsapp-auth`', true),
    'local chat': result(true, `port ${config.localChannelPort} (link: nanoclaw open)`),
    'mount allowlist': configFile(mounts, 'no extra mounts are allowed', () =>
      loadMountAllowlist(configDir) ? undefined : `${mounts} is invalid`,
    ),
    'network policy': configFile(
      networkPolicyPath(configDir),
      "every sandbox's egress is refused",
      () => net.problem,
      `rules for ${['default', ...Object.keys(net.file.groups ?? {})].join(', ')}`,
    ),
    // The policy reader decides validity: an invalid file makes it fall back to owner-only.
    'group policy': configFile(policy, 'only your own messages trigger the agent', () => {
      if (!createGroupPolicy(configDir)('main').ownerOnly) return;
      try {
        JSON.parse(fs.readFileSync(policy, 'utf8'));
        return `${policy}: its fields do not match the format`;
      } catch (err) {
        return `${policy}: not valid JSON: ${(err as Error).message}`;
      }
    }),
    disk: result(gb >= 2, `${gb.toFixed(1)} GB free`, 'free at least 2 GB'),
    ...withStore({ config }, false, (store) => {
      if (!store) return {};
      // The last state the host recorded; doctor cannot see the live connection.
      const health = store.state.get(`${HEALTH_KEY_PREFIX}whatsapp`);
      const { state, since } = health ? (JSON.parse(health) as ChannelHealthRecord) : {};
      const failed = store.outbox.failed(3);
      const usage = store.usage.forDay(todayUtc());
      return {
        'usage today': result(
          true,
          usage
            .map((u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`)
            .join('; ') || 'none',
        ),
        'whatsapp connection':
          !!state &&
          result(
            state === 'up',
            `${state} since ${since}`,
            state === 'logged-out' ? 'run `nanoclaw whatsapp-auth`' : 'check the network',
            true,
          ),
        outbox: result(
          !failed.count,
          failed.count
            ? `${failed.count} message(s) failed for good (newest: ${failed.newest.map((f) => `${f.chatJid}: ${f.error}`).join('; ')})`
            : 'no failed messages',
          'these were not delivered; see the reasons',
          true,
        ),
      };
    }),
  };
  return Object.entries(results).flatMap(([name, r]) => (r ? [{ name, ...r }] : []));
}

// The configured runtime, else the first usable one in detection order (as `nanoclaw start` picks).
async function runtimeChecks(config: Config, platform: NodeJS.Platform): Promise<[string?, Results?]> {
  const configured = config.containerRuntime;
  const failed: string[] = [];
  let hint: string | undefined;
  for (const kind of configured ? [configured] : detectionOrder(platform)) {
    const runtime = buildRuntime(kind, config);
    try {
      await runtime.ensureRunning();
    } catch (e) {
      const { message, hint: h } = e as RuntimeUnavailableError;
      const reason = message.replace(`. ${h}`, '');
      failed.push(`${kind}: ${reason}`);
      if (configured || !reason.includes('not installed')) hint ??= h; // an installed runtime that does not run
      continue;
    }
    const built = await runtime.imageExists(config.containerImage);
    const [name, what] = kind === 'bwrap' ? ['agent', 'agent-runner'] : ['image', config.containerImage];
    const fix = 'run `nanoclaw build` (or `npm start`, which builds what is missing)';
    return [
      kind,
      {
        runtime: result(true, `${kind} is usable`),
        [name]: result(built, `${what} ${built ? 'present' : 'not found'}`, fix),
      },
    ];
  }
  hint ??= `install one sandbox runtime, then run \`nanoclaw build\`: ${
    platform === 'darwin'
      ? 'Apple container (https://github.com/apple/container/releases) or Docker Desktop (`brew install --cask docker`)'
      : 'Docker (`sudo apt-get install docker.io && sudo systemctl enable --now docker`) or bubblewrap (`sudo apt-get install bubblewrap`)'
  }`;
  return [
    configured,
    {
      runtime: configured
        ? result(
            false,
            `CONTAINER_RUNTIME=${failed[0]}`,
            `${hint}; or unset CONTAINER_RUNTIME to use any installed runtime`,
          )
        : result(false, `no usable sandbox runtime (${failed.join('; ')})`, hint),
    },
  ];
}

// The security config files: none means the defaults; an invalid one fails closed (`until`).
function configFile(file: string, until: string, problem: () => string | undefined, valid = 'valid'): Result {
  if (!fs.existsSync(file)) return result(true, 'none (the defaults apply)');
  const p = problem();
  const fix = `fix ${file} (format: README, "Security configuration"); until then ${until}`;
  return p ? result(false, p, fix) : result(true, `${file}: ${valid}`);
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
  // The project (agent-runner, main's view), the state and Node itself are bound in.
  const targets = [projectRoot, home, path.dirname(fs.realpathSync(process.execPath))];
  const blocked = [...new Set(targets.flatMap((t) => unreachableDirs(t, { uid, gid: uid })))];
  return result(
    !blocked.length,
    `uid ${uid} (the bwrap sandbox user) ${blocked.length ? `cannot pass ${blocked.join(', ')}` : 'can reach the project, NANOCLAW_HOME and node'}`,
    `\`chmod o+rx ${blocked.join(' ')}\`, or keep the project and NANOCLAW_HOME outside /root, or use Docker`,
  );
}

/** The name of the passwd or group entry with this id, or null. */
export type AccountLookup = (db: 'passwd' | 'group', id: number) => string | null;

// getent sees every account source (files, LDAP, sssd); /etc alone is the fallback without it.
export const systemAccountLookup: AccountLookup = (db, id) => {
  const getent = spawnSync('getent', [db, String(id)], { encoding: 'utf8', timeout: 10_000 });
  if (getent.status === 0) return getent.stdout.split(':')[0] || `#${id}`;
  if (getent.status === 2) return null; // not found
  const lines = fs.existsSync(`/etc/${db}`) ? fs.readFileSync(`/etc/${db}`, 'utf8').split('\n') : [];
  return lines.map((l) => l.split(':')).find((f) => f[2] === String(id))?.[0] ?? null;
};

// A root host's sandboxes run as sandboxUid (gid the same): a person with that id would share their files.
export function sandboxUidCheck(config: Config, isRoot: boolean, lookup = systemAccountLookup): Result {
  const uid = config.sandboxUid;
  if (!isRoot) return result(true, 'sandboxes run as you; SANDBOX_UID applies only to a root host');
  const taken = (id: number) =>
    (['passwd', 'group'] as const).flatMap((db) => {
      const name = lookup(db, id);
      return name === null ? [] : [`${db === 'passwd' ? 'user' : 'group'} "${name}"`];
    });
  const owners = taken(uid);
  if (!owners.length) return result(true, `sandboxes run as uid/gid ${uid}, which no account has`);
  // A free id below 61184, where systemd's dynamic users begin.
  const free = Array.from({ length: 184 }, (_, i) => DEFAULT_SANDBOX_UID + i).find((id) => !taken(id).length);
  return result(
    false,
    `sandboxes run as uid/gid ${uid}, which belongs to ${owners.join(' and ')} on this host`,
    `set SANDBOX_UID in ${config.envFile} to an id no account has${free ? ` (e.g. SANDBOX_UID=${free})` : ''}, then restart`,
  );
}

export function sandboxLimitsCheck({ missing, version, reason }: CgroupSupport, isRoot: boolean): Result {
  const { pidsMax, memoryBytes } = DEFAULT_LIMITS;
  if (!missing.length)
    return result(
      true,
      `pids ≤ ${pidsMax} and memory ≤ ${memoryBytes / 1024 ** 3} GiB per bwrap sandbox (cgroup ${version})`,
    );
  return result(
    false,
    `bwrap sandboxes run without ${missing.join(' and ')} limits (${reason ?? 'no usable cgroups'})`,
    `${isRoot ? 'enable cgroup v2 with the pids and memory controllers (systemd.unified_cgroup_hierarchy=1)' : 'run nanoclaw as root on a machine with cgroup v2'}, or use Docker`,
    true,
  );
}
