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
import { detectCgroupSupport, type CgroupSupport } from '../sandbox/runtimes/cgroup.js';
import { todayUtc } from '../util/today.js';
import { withStore } from './args.js';

// `fix`: what to do when it fails; a `warnOnly` check does not fail doctor.
function result(ok: boolean, detail: string, fix?: string, warnOnly?: true) {
  return { ok, detail, fix, warnOnly };
}
export type Check = ReturnType<typeof result> & { name: string };

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
  opts: { platform?: NodeJS.Platform; isRoot?: boolean; nodeVersion?: string } = {},
): Promise<Check[]> {
  const { platform = process.platform, isRoot = process.getuid?.() === 0 } = opts;
  const { configDir, envFile } = config;
  const linux = platform === 'linux';
  const version = opts.nodeVersion ?? process.versions.node;
  const key = Object.keys(readSecrets(envFile)).find((k) => /KEY|TOKEN/.test(k));
  const chmod = `\`chmod 600 ${envFile}\``;
  const shared = (fs.statSync(envFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o077;
  const jid = linkedAccountJid(config.authDir);
  const mounts = path.join(configDir, 'mount-allowlist.json');
  const { bavail, bsize } = fs.statfsSync(fs.existsSync(config.home) ? config.home : config.projectRoot);
  const gb = (bavail * bsize) / 1024 ** 3;
  // The last state the host recorded, not the live one.
  const { state, since, failed, usage } = withStore({ config }, false, (s) => ({
    ...(JSON.parse(s?.state.get(`${HEALTH_KEY_PREFIX}whatsapp`) ?? '{}') as Partial<ChannelHealthRecord>),
    failed: s?.outbox.failed() ?? 0,
    usage: s?.usage.forDay(todayUtc()) ?? [],
  }));
  let kind = config.containerRuntime as string | undefined;
  let runtime;
  try {
    const rt = await createRuntime(config, platform);
    if (kind) await rt.ensureRunning();
    const built = await rt.imageExists(config.containerImage);
    kind = rt.kind;
    runtime = {
      runtime: result(true, `${kind} is usable`),
      image: result(
        built,
        `${kind === 'bwrap' ? 'agent-runner' : config.containerImage} ${built ? 'present' : 'not found'}`,
        'run `nanoclaw build`',
      ),
    };
  } catch (e) {
    const { message, hint } = e as RuntimeUnavailableError;
    runtime = { runtime: result(false, message.replace(`. ${hint}`, ''), hint) };
  }
  const checks = {
    node: result(parseInt(version) >= 22, `Node ${version}`, 'install Node.js 22 or 24 (`nvm install 24`)'),
    ...runtime,
    'sandbox user': linux && isRoot && sandboxUidCheck(config),
    'sandbox limits': linux && kind === 'bwrap' && sandboxLimitsCheck(detectCgroupSupport()),
    credentials: result(
      !!key,
      key
        ? `${key} set${shared ? `; readable by other users: ${chmod}` : ''}`
        : `no model credentials in ${envFile}`,
      `add ANTHROPIC_API_KEY=... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${envFile}, then ${chmod}`,
    ),
    whatsapp: result(
      !!jid && (!state || state === 'up'),
      `${jid ? `linked as ${jid}` : 'not linked'}${state ? `; ${state} since ${since}` : ''}`,
      jid && state === 'down' ? 'check the network' : 'run `nanoclaw whatsapp-auth`',
      true,
    ),
    outbox: result(
      !failed,
      failed ? `${failed} message(s) failed for good` : 'no failed messages',
      "see the host log ('failed for good')",
      true,
    ),
    'mount allowlist':
      fs.existsSync(mounts) &&
      result(!!loadMountAllowlist(configDir), mounts, 'fix it; until then no extra mounts are allowed'),
    disk: result(gb >= 2, `${gb.toFixed(1)} GB free`, 'free at least 2 GB'),
    'usage today': result(
      true,
      usage
        .map((u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`)
        .join('; ') || 'none',
    ),
  };
  return Object.entries(checks).flatMap(([name, r]) => (r ? [{ name, ...r }] : []));
}

// getent sees every account source (LDAP, sssd); /etc without it.
export const systemAccountLookup = (db: 'passwd' | 'group', id: number) => {
  const getent = spawnSync('getent', [db, String(id)], { encoding: 'utf8' });
  const rows = (getent.error ? fs.readFileSync(`/etc/${db}`, 'utf8') : getent.stdout).split('\n');
  return rows.map((l) => l.split(':')).find((f) => f[2] === String(id))?.[0] ?? null;
};

// A root host's sandboxes run as sandboxUid: an account with it would share their files.
export function sandboxUidCheck(config: Config, lookup = systemAccountLookup) {
  const uid = config.sandboxUid;
  const taken = [lookup('passwd', uid), lookup('group', uid)].filter((n) => n !== null);
  return result(
    !taken.length,
    `sandboxes run as uid/gid ${uid}, which ${taken.length ? `belongs to ${taken.join(' and ')}` : 'no account has'}`,
    `set SANDBOX_UID in ${config.envFile} to an id no user or group has`,
  );
}

export const sandboxLimitsCheck = ({ missing, version, reason }: CgroupSupport) =>
  missing.length
    ? result(
        false,
        `bwrap sandboxes run without ${missing.join(' and ')} limits (${reason ?? 'no usable cgroups'})`,
        'run nanoclaw as root with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or use Docker',
        true,
      )
    : result(true, `pids and memory limits through cgroup ${version}`);
