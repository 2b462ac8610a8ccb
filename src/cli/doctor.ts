import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { isWhatsAppLinked } from '../channels/whatsapp/whatsapp-channel.js';
import { createRuntime } from '../sandbox/detect.js';
import { loadMountAllowlist } from '../sandbox/mount-allowlist.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** The exact thing to do when the check fails (or a warning's advice). */
  fix?: string;
  /** A warning doesn't fail doctor. */
  warnOnly?: boolean;
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
  return failed.length === 0 ? 0 : 1;
}

export async function collectChecks(config: Config): Promise<Check[]> {
  const checks: Check[] = [];
  const major = Number(process.versions.node.split('.')[0]);
  checks.push({
    name: 'node',
    ok: major >= 20,
    detail: `Node ${process.versions.node}`,
    fix: 'install Node.js 20 or newer',
  });

  let runtimeKind: string | undefined;
  try {
    const runtime = await createRuntime(config);
    runtimeKind = runtime.kind;
    await runtime.ensureRunning();
    checks.push({ name: 'runtime', ok: true, detail: `${runtime.kind} is usable` });
    if (runtime.kind === 'bwrap') {
      const runner = path.join(config.projectRoot, 'container', 'agent-runner', 'dist', 'index.js');
      checks.push({
        name: 'agent',
        ok: fs.existsSync(runner),
        detail: fs.existsSync(runner) ? 'agent-runner built for bwrap' : 'agent-runner not built',
        fix: 'run `nanoclaw build`',
      });
    } else {
      const exists = await runtime.imageExists(config.containerImage);
      checks.push({
        name: 'image',
        ok: exists,
        detail: exists ? `${config.containerImage} present` : `${config.containerImage} not found`,
        fix: 'run `nanoclaw build`',
      });
    }
  } catch (err) {
    checks.push({
      name: 'runtime',
      ok: false,
      detail: (err as Error).message.split('\n')[0] ?? 'no runtime',
      fix: runtimeKind
        ? `start ${runtimeKind} (e.g. \`sudo systemctl start ${runtimeKind}\`)`
        : 'install Docker (`sudo apt-get install docker.io`) or bubblewrap (`sudo apt-get install bubblewrap`)',
    });
  }

  const secrets = readSecrets(config.envFile);
  const credential = secrets.ANTHROPIC_API_KEY
    ? 'ANTHROPIC_API_KEY'
    : secrets.CLAUDE_CODE_OAUTH_TOKEN
      ? 'CLAUDE_CODE_OAUTH_TOKEN'
      : secrets.ANTHROPIC_AUTH_TOKEN
        ? 'ANTHROPIC_AUTH_TOKEN'
        : undefined;
  checks.push({
    name: 'credentials',
    ok: credential !== undefined,
    detail: credential
      ? `${credential} set in ${config.envFile}${secrets.ANTHROPIC_BASE_URL ? ` (upstream ${secrets.ANTHROPIC_BASE_URL})` : ''}`
      : `no model credentials in ${config.envFile}`,
    fix: `add a line ANTHROPIC_API_KEY=sk-ant-... (or CLAUDE_CODE_OAUTH_TOKEN=...) to ${config.envFile}`,
  });

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

  const allowlistFile = path.join(config.configDir, 'mount-allowlist.json');
  if (fs.existsSync(allowlistFile)) {
    const allowlist = loadMountAllowlist(config.configDir);
    checks.push({
      name: 'mount allowlist',
      ok: allowlist !== null,
      detail: allowlist ? `${allowlist.allowedRoots.length} allowed root(s)` : `${allowlistFile} is invalid`,
      fix: `fix the JSON in ${allowlistFile} (see README: Extra mounts); until then no extra mounts are allowed`,
    });
  } else {
    checks.push({ name: 'mount allowlist', ok: true, detail: 'none (no extra directories are mounted)' });
  }

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

  if (fs.existsSync(config.dbPath)) {
    const store = openStore(config.dbPath);
    try {
      const groups = store.groups.all();
      checks.push({
        name: 'groups',
        ok: true,
        detail: `${groups.length} registered (${groups.map((g) => g.folder).join(', ')})`,
      });
      const usage = store.usage.forDay(new Date().toISOString().slice(0, 10));
      const usageText = usage.map(
        (u) => `${u.groupFolder}: ${u.inputTokens + u.outputTokens} tokens / ${u.requests} requests`,
      );
      checks.push({ name: 'usage today', ok: true, detail: usageText.join('; ') || 'none' });
    } finally {
      store.close();
    }
  }
  return checks;
}
