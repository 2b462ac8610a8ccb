import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { HEALTH_KEY_PREFIX, type ChannelHealthRecord } from '../channel-health.js';
import { linkedAccountJid } from '../channels/whatsapp/link-state.js';
import type { Config } from '../config.js';
import { readSecrets } from '../env-file.js';
import { createRuntime } from '../sandbox/detect.js';
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
  const colour = (out as { isTTY?: boolean }).isTTY && !process.env.NO_COLOR;
  if (json) out.write(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  else {
    for (const c of checks) {
      const [code, mark] = c.ok ? [32, 'ok  '] : c.warnOnly ? [33, 'warn'] : [31, 'FAIL'];
      out.write(`[${colour ? `\x1b[${code}m${mark}\x1b[0m` : mark}] ${c.name}: ${c.detail}\n`);
      if (!c.ok) out.write(`       fix: ${c.fix}\n`);
    }
    out.write(
      `\n${failed ? `${failed} check(s) failed.` : 'All checks passed.'} Live sandbox test: nanoclaw audit\n`,
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
  const version = opts.nodeVersion ?? process.versions.node;
  const key = Object.keys(readSecrets(envFile)).find((k) => /KEY|TOKEN/.test(k));
  const chmod = `\`chmod 600 ${envFile}\``;
  const shared = (fs.statSync(envFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o077;
  const jid = linkedAccountJid(config.authDir);
  const mounts = path.join(configDir, 'mount-allowlist.json');
  const { bavail, bsize } = fs.statfsSync(fs.existsSync(config.home) ? config.home : config.projectRoot);
  const gb = (bavail * bsize) / 1024 ** 3;
  // The last state the host recorded, not the live one.
  const db = withStore({ config }, false, (s) => {
    const health = s?.state.get(`${HEALTH_KEY_PREFIX}whatsapp`);
    return {
      ...(health ? (JSON.parse(health) as ChannelHealthRecord) : {}),
      failed: s?.outbox.failed() ?? 0,
      usage: s?.usage.forDay(todayUtc()) ?? [],
    };
  });
  const { state, failed } = db;
  const results: Results = {
    node: result(
      +version.split('.')[0]! >= 22,
      `Node ${version}`,
      'install Node.js 22 or 24 (`nvm install 24`)',
    ),
    ...runtime,
    'sandbox user': linux && sandboxUidCheck(config, isRoot, opts.accounts),
    'sandbox limits':
      linux && kind === 'bwrap' && sandboxLimitsCheck((opts.cgroups ?? detectCgroupSupport)(), isRoot),
    credentials: result(
      !!key,
      key
        ? `${key} set${shared ? `; readable by other users: ${chmod}` : ''}`
        : `no model credentials in ${envFile}`,
      `add ANTHROPIC_API_KEY=... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${envFile}, then ${chmod}`,
    ),
    whatsapp: result(
      !!jid && (!state || state === 'up'),
      `${jid ? `linked as ${jid}` : 'not linked'}${state ? `; ${state} since ${db.since}` : ''}`,
      jid && state === 'down' ? 'check the network' : 'run `nanoclaw whatsapp-auth`',
      true,
    ),
    outbox: result(
      !failed,
      failed ? `${failed} message(s) failed for good` : 'no failed messages',
      "the host log gives each reason (search 'failed for good')",
      true,
    ),
    'mount allowlist':
      fs.existsSync(mounts) &&
      result(
        !!loadMountAllowlist(configDir),
        mounts,
        `fix ${mounts}; until then no extra mounts are allowed`,
      ),
    disk: result(gb >= 2, `${gb.toFixed(1)} GB free`, 'free at least 2 GB'),
    'usage today': result(
      true,
      db.usage
        .map((u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`)
        .join('; ') || 'none',
    ),
  };
  return Object.entries(results).flatMap(([name, r]) => (r ? [{ name, ...r }] : []));
}

async function runtimeChecks(config: Config, platform: NodeJS.Platform): Promise<[string?, Results?]> {
  try {
    const runtime = await createRuntime(config, platform);
    if (config.containerRuntime) await runtime.ensureRunning();
    const built = await runtime.imageExists(config.containerImage);
    const what = runtime.kind === 'bwrap' ? 'agent-runner' : config.containerImage;
    return [
      runtime.kind,
      {
        runtime: result(true, `${runtime.kind} is usable`),
        image: result(built, `${what} ${built ? 'present' : 'not found'}`, 'run `nanoclaw build`'),
      },
    ];
  } catch (e) {
    const { message, hint } = e as RuntimeUnavailableError;
    return [config.containerRuntime, { runtime: result(false, message.replace(`. ${hint}`, ''), hint) }];
  }
}

export type AccountLookup = (db: 'passwd' | 'group', id: number) => string | null;

// getent sees every account source (LDAP, sssd); /etc without it.
export const systemAccountLookup: AccountLookup = (db, id) => {
  const getent = spawnSync('getent', [db, String(id)], { encoding: 'utf8' });
  const lines = getent.error ? fs.readFileSync(`/etc/${db}`, 'utf8') : getent.stdout;
  return (
    lines
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[2] === String(id))?.[0] ?? null
  );
};

// A root host's sandboxes run as sandboxUid: an account with it would share their files.
export function sandboxUidCheck(config: Config, isRoot: boolean, lookup = systemAccountLookup): Result {
  const uid = config.sandboxUid;
  if (!isRoot) return result(true, 'sandboxes run as you (SANDBOX_UID is for a root host)');
  const taken = [lookup('passwd', uid), lookup('group', uid)].filter((n) => n !== null);
  if (!taken.length) return result(true, `sandboxes run as uid/gid ${uid}, which no account has`);
  return result(
    false,
    `sandboxes run as uid/gid ${uid}, which belongs to ${taken.join(' and ')}`,
    `set SANDBOX_UID in ${config.envFile} to an id no user or group has`,
  );
}

export function sandboxLimitsCheck({ missing, version, reason }: CgroupSupport, isRoot: boolean): Result {
  const { pidsMax, memoryBytes } = DEFAULT_LIMITS;
  if (!missing.length)
    return result(true, `cgroup ${version}: pids ≤ ${pidsMax}, memory ≤ ${memoryBytes / 1024 ** 3} GiB`);
  return result(
    false,
    `bwrap sandboxes run without ${missing.join(' and ')} limits (${reason ?? 'no usable cgroups'})`,
    `${isRoot ? 'enable cgroup v2 (systemd.unified_cgroup_hierarchy=1)' : 'run nanoclaw as root with cgroup v2'}, or use Docker`,
    true,
  );
}
