import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { isWhatsAppLinked } from '../channels/whatsapp/link-state.js';
import { createGroupPolicy, groupPolicyPath } from '../policy/group-policy.js';
import { loadNetworkPolicy, networkPolicyPath } from '../proxy/network-policy.js';
import { buildRuntime, createRuntime, detectionOrder } from '../sandbox/detect.js';
import { loadMountAllowlist } from '../sandbox/mount-allowlist.js';
import { RuntimeUnavailableError, type SandboxRuntime } from '../sandbox/runtime.js';
import { detectCgroupSupport, type CgroupSupport } from '../sandbox/runtimes/cgroup.js';
import {
  permissionsCheck,
  sandboxLimitsCheck,
  sandboxUidCheck,
  type AccountLookup,
} from './doctor-sandbox.js';

export { unreachableDirs } from './doctor-sandbox.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** The exact thing to do when the check fails (or a warning's advice). */
  fix?: string;
  /** A warning doesn't fail doctor. */
  warnOnly?: boolean;
}

export interface DoctorOptions {
  platform?: NodeJS.Platform;
  /** Whether the host runs as root (then sandboxes run as SANDBOX_UID, and bwrap's need a way in). */
  isRoot?: boolean;
  /** Where bwrap would put sandbox cgroups (tests pass a fixed answer). */
  cgroups?: () => CgroupSupport;
  /** Who has a given uid or gid on this host (tests pass a fake). */
  accounts?: AccountLookup;
}

/** Runs every check; each failing one says exactly what to do. Exit code 1 when any check fails. */
export async function runDoctor(deps: { config: Config; out: Writable }): Promise<number> {
  const checks = await collectChecks(deps.config);
  for (const c of checks) {
    const mark = c.ok ? 'ok  ' : c.warnOnly ? 'warn' : 'FAIL';
    deps.out.write(`[${mark}] ${c.name}: ${c.detail}\n`);
    if (!c.ok && c.fix) deps.out.write(`       fix: ${c.fix}\n`);
  }
  const failed = checks.filter((c) => !c.ok && !c.warnOnly);
  deps.out.write(failed.length === 0 ? '\nAll checks passed.\n' : `\n${failed.length} check(s) failed.\n`);
  deps.out.write('To test the sandbox boundary itself, live: nanoclaw audit\n');
  return failed.length === 0 ? 0 : 1;
}

export async function collectChecks(config: Config, options: DoctorOptions = {}): Promise<Check[]> {
  const platform = options.platform ?? process.platform;
  const isRoot = options.isRoot ?? process.getuid?.() === 0;
  const major = Number(process.versions.node.split('.')[0]);
  const checks: Check[] = [
    {
      name: 'node',
      ok: major >= 20,
      detail: `Node ${process.versions.node}`,
      fix: 'install Node.js 20 or newer (https://nodejs.org, or your package manager)',
    },
  ];

  const runtime = await runtimeChecks(config, platform);
  checks.push(...runtime.checks);
  if (platform === 'linux') checks.push(sandboxUidCheck(config, isRoot, options.accounts));
  // bwrap sandboxes of a root host run as the sandbox uid and resolve their mounts with it.
  if (platform === 'linux' && isRoot && (runtime.kind === 'bwrap' || runtime.kind === undefined)) {
    checks.push(permissionsCheck(config));
  }
  if (platform === 'linux' && runtime.kind === 'bwrap')
    checks.push(sandboxLimitsCheck((options.cgroups ?? detectCgroupSupport)(), isRoot));

  checks.push(credentialsCheck(config));
  const linked = isWhatsAppLinked(config.authDir);
  checks.push({
    name: 'whatsapp',
    ok: linked,
    warnOnly: true,
    detail: linked
      ? `linked (credentials in ${config.authDir})`
      : 'not linked (the local chat works without it)',
    fix: 'run `nanoclaw whatsapp-auth` and scan the QR code with WhatsApp > Linked devices',
  });
  checks.push({
    name: 'local chat',
    ok: true,
    detail: `http://127.0.0.1:${config.localChannelPort}/ (token in ${path.join(config.dataDir, 'local-channel.token')})`,
  });
  checks.push(mountAllowlistCheck(config), networkPolicyCheck(config), groupPolicyCheck(config));

  try {
    const stat = fs.statfsSync(fs.existsSync(config.home) ? config.home : config.projectRoot);
    const freeGb = (stat.bavail * stat.bsize) / 1024 ** 3;
    checks.push({
      name: 'disk',
      ok: freeGb >= 2,
      detail: `${freeGb.toFixed(1)} GB free`,
      fix: 'free at least 2 GB: the agent image and group files need room',
    });
  } catch {
    /* statfs unsupported: skip */
  }
  checks.push(...storeChecks(config));
  return checks;
}

/** The exact install commands per platform, for a machine where no runtime was found at all. */
export function runtimeInstallAdvice(platform: NodeJS.Platform): string {
  if (platform === 'linux')
    return (
      'install one sandbox runtime, then run `nanoclaw build`. Docker: `sudo apt-get install docker.io && ' +
      'sudo systemctl enable --now docker` (Fedora: `sudo dnf install moby-engine`); or bubblewrap, which ' +
      'needs no daemon: `sudo apt-get install bubblewrap` (Fedora: `sudo dnf install bubblewrap`); or ' +
      'Podman: `sudo apt-get install podman`'
    );
  if (platform === 'darwin')
    return (
      'install one sandbox runtime, then run `nanoclaw build`. Apple container (macOS 26+ on Apple ' +
      'silicon): the installer from https://github.com/apple/container/releases, then `container system ' +
      'start`; or Docker Desktop: `brew install --cask docker`, then open Docker.app once'
    );
  return 'NanoClaw runs on Linux and macOS; on Windows run it inside WSL2 with Docker (`sudo apt-get install docker.io`)';
}

/** A RuntimeUnavailableError's message without its trailing hint. */
function reasonOf(err: unknown): string {
  if (err instanceof RuntimeUnavailableError) {
    const suffix = `. ${err.hint}`;
    return err.message.endsWith(suffix) ? err.message.slice(0, -suffix.length) : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

async function runtimeChecks(
  config: Config,
  platform: NodeJS.Platform,
): Promise<{ kind: string | undefined; checks: Check[] }> {
  let runtime: SandboxRuntime;
  try {
    runtime = await createRuntime(config, platform);
    await runtime.ensureRunning();
  } catch (err) {
    if (config.containerRuntime) {
      // The configured runtime is missing or down: its own hint names the fix (install or start).
      return {
        kind: config.containerRuntime,
        checks: [
          {
            name: 'runtime',
            ok: false,
            detail: `CONTAINER_RUNTIME=${config.containerRuntime}: ${reasonOf(err)}`,
            fix:
              err instanceof RuntimeUnavailableError
                ? `${err.hint} — or unset CONTAINER_RUNTIME to use whichever runtime is installed`
                : 'unset CONTAINER_RUNTIME to use whichever runtime is installed',
          },
        ],
      };
    }
    // Nothing usable: say per runtime what is wrong, so "installed but not running" is visible.
    const reasons: string[] = [];
    let installedButBroken: RuntimeUnavailableError | undefined;
    for (const kind of detectionOrder(platform)) {
      try {
        await buildRuntime(kind, config).ensureRunning();
      } catch (probeErr) {
        const reason = reasonOf(probeErr);
        reasons.push(`${kind}: ${reason}`);
        if (!/not installed/.test(reason) && probeErr instanceof RuntimeUnavailableError)
          installedButBroken ??= probeErr;
      }
    }
    return {
      kind: undefined,
      checks: [
        {
          name: 'runtime',
          ok: false,
          detail: `no usable sandbox runtime (${reasons.join('; ')})`,
          fix: installedButBroken ? installedButBroken.hint : runtimeInstallAdvice(platform),
        },
      ],
    };
  }

  const checks: Check[] = [{ name: 'runtime', ok: true, detail: `${runtime.kind} is usable` }];
  if (runtime.kind === 'bwrap') {
    const built = await runtime.imageExists(config.containerImage);
    checks.push({
      name: 'agent',
      ok: built,
      detail: built ? 'agent-runner built for bwrap' : 'agent-runner not built (container/agent-runner/dist)',
      fix: 'run `nanoclaw build` (or `npm start`, which builds what is missing)',
    });
  } else {
    const exists = await runtime.imageExists(config.containerImage);
    checks.push({
      name: 'image',
      ok: exists,
      detail: exists ? `${config.containerImage} present` : `${config.containerImage} not found`,
      fix: 'run `nanoclaw build` (or `npm start`, which builds it when missing)',
    });
  }
  return { kind: runtime.kind, checks };
}

function credentialsCheck(config: Config): Check {
  const secrets = readSecrets(config.envFile);
  const credential = secrets.ANTHROPIC_API_KEY
    ? 'ANTHROPIC_API_KEY'
    : secrets.CLAUDE_CODE_OAUTH_TOKEN
      ? 'CLAUDE_CODE_OAUTH_TOKEN'
      : secrets.ANTHROPIC_AUTH_TOKEN
        ? 'ANTHROPIC_AUTH_TOKEN'
        : undefined;
  const mode = fs.statSync(config.envFile, { throwIfNoEntry: false })?.mode;
  const readableByOthers = mode !== undefined && (mode & 0o077) !== 0;
  return {
    name: 'credentials',
    ok: credential !== undefined,
    detail: credential
      ? `${credential} set in ${config.envFile}${secrets.ANTHROPIC_BASE_URL ? ` (upstream ${secrets.ANTHROPIC_BASE_URL})` : ''}` +
        (readableByOthers
          ? `; note: the file is readable by other users — \`chmod 600 ${config.envFile}\``
          : '')
      : `no model credentials in ${config.envFile}`,
    fix: `add a line ANTHROPIC_API_KEY=sk-ant-... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${config.envFile}, then \`chmod 600 ${config.envFile}\``,
  };
}

function mountAllowlistCheck(config: Config): Check {
  const file = path.join(config.configDir, 'mount-allowlist.json');
  if (!fs.existsSync(file))
    return { name: 'mount allowlist', ok: true, detail: `none (no extra directories are mounted)` };
  const allowlist = loadMountAllowlist(config.configDir);
  return {
    name: 'mount allowlist',
    ok: allowlist !== null,
    detail: allowlist ? `${allowlist.allowedRoots.length} allowed root(s) in ${file}` : `${file} is invalid`,
    fix: `fix the JSON in ${file} (format: README, "Security configuration"); until then no extra mounts are allowed`,
  };
}

function networkPolicyCheck(config: Config): Check {
  const file = networkPolicyPath(config.configDir);
  const loaded = loadNetworkPolicy(config.configDir);
  switch (loaded.source) {
    case 'missing':
      return {
        name: 'network policy',
        ok: true,
        detail: 'none (any public host; loopback, private and metadata addresses are always refused)',
      };
    case 'file': {
      const groups = Object.keys(loaded.file.groups ?? {});
      return {
        name: 'network policy',
        ok: true,
        detail: `${file}: default rules${groups.length ? ` + rules for ${groups.join(', ')}` : ''}`,
      };
    }
    case 'invalid':
      return {
        name: 'network policy',
        ok: false,
        detail: loaded.problem ?? `${file} is invalid`,
        fix: `fix ${file} (format: README, "Security configuration"); until then every sandbox's egress is refused`,
      };
  }
}

function groupPolicyCheck(config: Config): Check {
  const file = groupPolicyPath(config.configDir);
  if (!fs.existsSync(file))
    return {
      name: 'group policy',
      ok: true,
      detail: 'none (default limits, no budgets, no sender allowlists)',
    };
  // The policy reader itself decides validity; an invalid file makes it fall back to owner-only.
  const invalid = createGroupPolicy(config.configDir)('main').ownerOnly;
  if (!invalid) return { name: 'group policy', ok: true, detail: `${file} is valid` };
  let problem = 'its fields do not match the format (the log line above names them)';
  try {
    JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    problem = `not valid JSON: ${(err as Error).message}`;
  }
  return {
    name: 'group policy',
    ok: false,
    detail: `${file}: ${problem}`,
    fix: `fix ${file} (format: README, "Security configuration"); until then only your own messages trigger the agent`,
  };
}

function storeChecks(config: Config): Check[] {
  if (!fs.existsSync(config.dbPath)) return [];
  const store = openStore(config.dbPath);
  try {
    const groups = store.groups.all();
    const usage = store.usage.forDay(new Date().toISOString().slice(0, 10));
    const usageText = usage.map(
      (u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`,
    );
    return [
      {
        name: 'groups',
        ok: true,
        detail: `${groups.length} registered (${groups.map((g) => g.folder).join(', ')})`,
      },
      { name: 'usage today', ok: true, detail: usageText.join('; ') || 'none' },
    ];
  } finally {
    store.close();
  }
}
