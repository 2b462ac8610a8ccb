import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../config.js';
import { isValidFolder } from '../contract/ipc.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { ensureMainGroup } from '../groups.js';
import { clearInput } from '../ipc/to-agent.js';
import { loadNetworkPolicy, policyForGroup } from '../proxy/network-policy.js';
import { ProxyManager } from '../proxy/proxy-manager.js';
import { withSafeDir } from '../safe-fs.js';
import { prepareAgentSkills } from '../sandbox/agent-skills.js';
import { loadMountAllowlist, validateAdditionalMounts } from '../sandbox/mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS as C, prepareGroupDirs } from '../sandbox/mount-plan.js';
import { GROUP_LABEL, hostIsRoot, INSTANCE_LABEL, SANDBOX_HOME, sandboxUser } from '../sandbox/runtime.js';
import type { SandboxRuntime } from '../sandbox/runtime.js';
import { createFixtures, plantPlan, removePlants, watchTree } from './fixtures.js';
import { HOST_ACTIONS, runHostActions } from './host-actions.js';
import { fingerprint, probeReportSchema, probeSource, REPORT_MARKER } from './probe.js';
import { anyFailed, judge } from './verdicts.js';

/**
 * A sandbox for a group, prepared as SandboxRunner prepares one, runs the probe instead of the
 * agent; then the host acts on what the probe planted, and the evidence is judged. Nothing here
 * connects beyond loopback: the audit's egress proxy resolves no names and dials nothing.
 */

/** `usage`: a problem with what the person asked for (exit code 2), not with the sandbox. */
export class AuditError extends Error {
  constructor(
    message: string,
    readonly usage = false,
  ) {
    super(message);
  }
}

function findGroup(config: Config, folder: string | undefined) {
  const store = openStore(config.dbPath);
  try {
    if (folder === undefined) ensureMainGroup(store, config); // as the first start does
    const group = folder === undefined ? store.groups.main() : store.groups.byFolder(folder);
    if (group && isValidFolder(group.folder)) return group;
    throw new AuditError(
      `no registered group has the folder '${folder ?? 'main'}' (see nanoclaw groups list)`,
      true,
    );
  } finally {
    store.close();
  }
}

/** A target the group's network policy refuses by name (so it is never resolved), if it has one. */
function policyRefusedTarget(config: Config, folder: string, nonce: string) {
  const policy = policyForGroup(loadNetworkPolicy(config.configDir), folder);
  const denied = policy.deny.find((d) => !d.startsWith('*.')) ?? policy.deny[0]?.replace(/^\*\./, 'audit.');
  if (policy.noNetwork) return 'example.com:443';
  if (denied) return `${denied}:443`;
  return policy.allow ? `audit-${nonce}.invalid:443` : undefined;
}

/** bwrap: the sandbox's pids and memory limits, from its cgroup on the host (/sys is hidden inside). */
function hostLimitsOf(pid: number) {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const sys = (...parts: string[]) => read(path.join('/sys/fs/cgroup', ...parts));
  const limits = { pids: null as string | null, memory: null as string | null };
  for (const line of (read(`/proc/${pid}/cgroup`) ?? '').split('\n')) {
    const [, controllers = '', group = ''] = line.split(':');
    const v1 = controllers.split(',');
    if (!controllers) limits.pids ??= sys(group, 'pids.max');
    if (!controllers) limits.memory ??= sys(group, 'memory.max');
    if (v1.includes('pids')) limits.pids ??= sys('pids', group, 'pids.max');
    if (v1.includes('memory')) limits.memory ??= sys('memory', group, 'memory.limit_in_bytes');
  }
  return limits;
}

export async function runAudit(options: {
  config: Config;
  runtime: SandboxRuntime;
  folder?: string;
  verbose?: boolean;
  /** Stops the sandbox early; cleanup still runs. */
  signal?: AbortSignal;
}) {
  const { config, runtime, signal } = options;
  const started = Date.now();
  const group = findGroup(config, options.folder);
  if (!(await runtime.imageExists(config.containerImage)))
    throw new AuditError(
      `the agent ${runtime.kind === 'bwrap' ? 'runner' : 'image'} is missing: run nanoclaw build`,
    );
  const { folder, isMain } = group;
  const user = sandboxUser(config);
  const owner = hostIsRoot() ? user : undefined;
  const fixtures = createFixtures(config);
  const { nonce } = fixtures;
  const cleanup: (() => unknown)[] = [fixtures.remove];
  const cleanupProblems: string[] = [];
  try {
    let canaryConnections = 0;
    const canary = net.createServer((socket) => {
      canaryConnections++;
      socket.destroy();
    });
    await once(canary.listen(0, '127.0.0.1'), 'listening');
    cleanup.push(() => new Promise((resolve) => canary.close(resolve)));
    const canaryPort = (canary.address() as net.AddressInfo).port;
    const proxyDials: string[] = [];
    const proxies = new ProxyManager({
      proxyDir: fixtures.workDir, // its own sockets: a running host's stay untouched
      configDir: config.configDir,
      readSecrets: () => ({}),
      recordUsage: () => undefined,
      tokensUsedToday: () => 0,
      dailyTokenBudget: () => undefined,
      onBudgetExceeded: () => undefined,
      lookup: () => Promise.reject(new Error('the audit resolves no names')),
      connectTcp: (target) => {
        proxyDials.push(`${target.host}:${target.port}`);
        const socket = new net.Socket();
        process.nextTick(() => socket.destroy(new Error('the audit dials nothing')));
        return socket;
      },
      ...(owner ? { sandboxUid: config.sandboxUid } : {}),
    });
    cleanup.push(() => proxies.stop());
    await proxies.ensureGroup(folder);

    prepareGroupDirs(group, config, user);
    clearInput(config, folder);
    const skills = prepareAgentSkills(config, folder, owner);
    const allowlist = loadMountAllowlist(config.configDir);
    const extras = validateAdditionalMounts(group.containerConfig?.additionalMounts ?? [], allowlist, {
      isMain,
      config,
    });
    const mounts = buildMountPlan(group, config, extras.allowed).map((m) =>
      m.containerPath === C.proxy ? { ...m, hostPath: proxies.socketDir(folder) } : m,
    );
    const plants = plantPlan({ nonce, decoyDir: fixtures.decoyDir, skills, isMain });
    let planted: Set<string> | 'unknown' = 'unknown';
    const drop: string[] = []; // files the host actions made in the group's folders
    cleanup.push(() => {
      cleanupProblems.push(...removePlants(plants, planted, mounts, drop));
      clearInput(config, folder);
      // Entries the IPC watcher refused are kept in data/ipc/errors/.
      if (fs.existsSync(path.join(config.ipcDir, 'errors')))
        withSafeDir(config.ipcDir, ['errors'], {}, (errors) => {
          for (const name of errors.list()) if (name.includes(nonce)) errors.remove(name);
        });
      // from-agent/ and the skills as the next run would find them.
      prepareGroupDirs(group, config, user);
      prepareAgentSkills(config, folder, owner);
    });

    const { ANTHROPIC_BASE_URL: _url, ...secrets } = readSecrets(config.envFile);
    const keys = [...new Set(Object.values(secrets))].filter((s) => s !== undefined);
    const refused = policyRefusedTarget(config, folder, nonce);
    const source = probeSource({
      sentinels: fixtures.sentinels,
      secrets: keys.map(fingerprint),
      scanRoots: [
        ...['/run', '/home', '/tmp', '/etc', '/root', C.group, C.ipc, C.inbox, C.global, '/workspace'],
        ...['/app', '/opt', '/srv', '/mnt', '/media', '/var'],
      ],
      direct: [
        { id: 'canary', host: '127.0.0.1', port: canaryPort },
        { id: 'local-chat', host: '127.0.0.1', port: config.localChannelPort },
        { id: 'private', host: '10.0.0.1', port: 80 },
        { id: 'metadata', host: '169.254.169.254', port: 80 },
      ],
      egressSocket: `${C.proxy}/egress.sock`,
      egress: [
        { id: 'metadata', target: '169.254.169.254:80' },
        { id: 'metadata-http', target: 'http://169.254.169.254/latest/meta-data/' },
        { id: 'loopback', target: `127.0.0.1:${canaryPort}` },
        { id: 'private', target: '10.0.0.1:80' },
        ...(refused ? [{ id: 'policy', target: refused }] : []),
      ],
      projectPath: C.project,
      plants,
    });

    const decoyChanges = watchTree(fixtures.decoyDir);
    const name = `nanoclaw-${folder}-${Date.now()}`;
    const proc = runtime.spawn({
      name,
      image: config.containerImage,
      mounts,
      env: { TZ: config.timezone, HOME: SANDBOX_HOME },
      workdir: C.group,
      labels: { [INSTANCE_LABEL]: config.instanceId, [GROUP_LABEL]: folder },
      user,
      command: ['node', '--input-type=module', '-'],
    });
    // bwrap moves itself into the sandbox's cgroup before it starts anything: read it now.
    const hostLimits = runtime.kind === 'bwrap' && proc.pid ? hostLimitsOf(proc.pid) : null;
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(0, 2 ** 23)));
    proc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    proc.stdin?.on('error', () => undefined); // a sandbox that died at once: its exit says why
    proc.stdin?.end(source);
    const stop = () => void runtime.stop(name).catch(() => undefined);
    const timer = setTimeout(stop, 120_000);
    signal?.addEventListener('abort', stop);
    const [code] = await once(proc, 'close').finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    });
    if (signal?.aborted) throw new AuditError('interrupted; what the audit had made is removed');

    const line = stdout.split('\n').find((l) => l.startsWith(REPORT_MARKER)) ?? '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.slice(REPORT_MARKER.length));
    } catch {
      // no report: the schema says so
    }
    const report = probeReportSchema.safeParse(parsed);
    if (!report.success)
      throw new AuditError(`the probe gave no valid report; sandbox exit code ${code}:\n${stderr.trim()}`);
    planted = new Set(report.data.plants.filter((p) => p.ok).map((p) => p.id));

    const actionsInput = { home: config.home, configDir: config.configDir, folder, nonce, user };
    const hostActions = await runHostActions({ ...actionsInput, actions: HOST_ACTIONS }, options);
    if (hostActions.runLog) drop.push(hostActions.runLog);

    const rows = judge({
      isMain,
      expectedUid: user.uid,
      projectPath: C.project,
      report: report.data,
      secretValues: keys,
      plants,
      hostActions,
      decoyChanges: decoyChanges(),
      decoyMarker: fixtures.decoyMarker,
      canaryConnections,
      proxyDials,
      hostLimits,
    });
    const durationMs = Date.now() - started;
    return {
      group: folder,
      runtime: runtime.kind,
      durationMs,
      rows,
      failed: anyFailed(rows),
      cleanupProblems,
    };
  } finally {
    for (const step of cleanup.reverse())
      try {
        await step();
      } catch (err) {
        cleanupProblems.push((err as Error).message);
      }
  }
}
