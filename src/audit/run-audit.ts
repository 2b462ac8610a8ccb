import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isValidFolder, type Config, type RuntimeKind } from '../config.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { ensureMainGroup } from '../groups.js';
import { clearInput, inToAgent, MEDIA_DIR } from '../ipc/to-agent.js';
import { loadNetworkPolicy, policyForGroup, ProxyManager } from '../proxy/proxy-manager.js';
import { withSafeDir } from '../safe-fs.js';
import { containerSkillsDir, prepareContainerSkills } from '../sandbox/container-skills.js';
import { loadMountAllowlist, validateAdditionalMounts } from '../sandbox/mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS, prepareGroupDirs } from '../sandbox/mount-plan.js';
import {
  GROUP_LABEL,
  hostIsRoot,
  INSTANCE_LABEL,
  SANDBOX_HOME,
  sandboxUser,
  type SandboxRuntime,
  type SandboxSpec,
} from '../sandbox/runtime.js';
import type { RegisteredGroup } from '../types.js';
import { fingerprint } from './fingerprint.js';
import { createFixtures, diffTrees, snapshotTree } from './fixtures.js';
import { HOST_ACTIONS, runHostActions } from './host-actions.js';
import { plantPlan, removePlants } from './plants.js';
import { probePreload, probeSource } from './probe.js';
import { listenCanary, parseReport, runSandbox } from './probe-run.js';
import type { ProbeConfig } from './types.js';
import { anyFailed, judge, type RowResult } from './verdicts.js';

/**
 * `nanoclaw audit`: a real sandbox for a group, started as ContainerRunner starts one (same group
 * dirs, mount plan and hardening), runs the probe instead of the agent; then the host acts on what
 * the probe planted, and the evidence is judged row by row. Everything the audit creates is
 * removed afterwards; the group's own files are put back as they were.
 *
 * Nothing here connects beyond loopback: the audit's egress proxy resolves no names and dials
 * nothing (its connector only records), and the probe tries direct connections beyond loopback
 * only from a sandbox whose one interface is `lo`.
 */

export class AuditError extends Error {
  constructor(
    message: string,
    /** A problem with what the person asked for (exit code 2), not with the sandbox. */
    readonly usage = false,
  ) {
    super(message);
    this.name = 'AuditError';
  }
}

export interface AuditOptions {
  config: Config;
  runtime: SandboxRuntime;
  /** The group to audit; the main group by default. */
  folder?: string;
  verbose?: boolean;
  /** Stops the sandbox early; cleanup still runs. */
  signal?: AbortSignal;
  sandboxTimeoutMs?: number;
}

export interface AuditResult {
  group: string;
  runtime: RuntimeKind;
  durationMs: number;
  rows: RowResult[];
  failed: boolean;
  /** Things the audit could not remove again (named so the person can). */
  cleanupProblems: string[];
}

function findGroup(config: Config, folder: string | undefined): RegisteredGroup {
  const store = openStore(config.dbPath);
  try {
    if (folder !== undefined) {
      const group = store.groups.byFolder(folder);
      if (!group)
        throw new AuditError(
          `no registered group has the folder '${folder}' (see nanoclaw groups list)`,
          true,
        );
      if (!isValidFolder(group.folder))
        throw new AuditError(`group folder '${folder}' is not a valid name`, true);
      return group;
    }
    ensureMainGroup(store, config); // what the first start does, so a fresh install can be audited
    const main = store.groups.main();
    if (!main) throw new AuditError('there is no main group: pass --group <folder>', true);
    return main;
  } finally {
    store.close();
  }
}

/** A target the group's network policy refuses by name (so it is never resolved), if it has one. */
function policyRefusedTarget(config: Config, folder: string, nonce: string): string | undefined {
  const policy = policyForGroup(loadNetworkPolicy(config.configDir), folder);
  if (policy.noNetwork) return 'example.com:443';
  const denied = policy.deny.find((d) => !d.startsWith('*.')) ?? policy.deny[0]?.replace(/^\*\./, 'audit.');
  if (denied) return `${denied}:443`;
  if (policy.allow) return `audit-${nonce}.invalid:443`;
  return undefined;
}

function skillNames(config: Config): string[] {
  const dir = containerSkillsDir(config);
  try {
    return fs.readdirSync(dir).filter((name) => fs.existsSync(path.join(dir, name, 'SKILL.md')));
  } catch {
    return [];
  }
}

export async function runAudit(options: AuditOptions): Promise<AuditResult> {
  const { config, runtime } = options;
  const started = Date.now();
  const group = findGroup(config, options.folder);
  if (!(await runtime.imageExists(config.containerImage)))
    throw new AuditError(
      `the agent ${runtime.kind === 'bwrap' ? 'runner build' : 'image'} is missing: run nanoclaw build`,
    );
  const folder = group.folder;
  const user = sandboxUser(config);
  const owner = hostIsRoot() ? user : undefined;
  const fixtures = createFixtures(config);
  const { nonce } = fixtures;
  const cleanup: Array<() => unknown> = [() => fixtures.remove()];
  const cleanupProblems: string[] = [];
  try {
    const canary = await listenCanary();
    cleanup.push(() => canary.close());
    const proxyDials: string[] = [];
    const proxies = new ProxyManager({
      // Its own socket folder: a running host keeps its sockets for this group untouched.
      proxyDir: fixtures.workDir,
      configDir: config.configDir,
      envFile: config.envFile,
      readSecrets: () => ({}),
      recordUsage: () => undefined,
      tokensUsedToday: () => 0,
      dailyTokenBudget: () => undefined,
      onBudgetExceeded: () => undefined,
      lookup: async () => {
        throw new Error('the audit resolves no names');
      },
      connectTcp: (target) => {
        proxyDials.push(`${target.host}:${target.port}`);
        const socket = new net.Socket();
        process.nextTick(() => socket.destroy(new Error('the audit dials nothing')));
        return socket;
      },
      ...(hostIsRoot() ? { sandboxUid: config.sandboxUid } : {}),
    });
    cleanup.push(() => proxies.stop());
    await proxies.ensureGroup(folder);

    // As ContainerRunner prepares a run, with the proxy mount pointed at the audit's own sockets.
    prepareGroupDirs(group, config, user);
    clearInput(config, folder);
    prepareContainerSkills(config, folder, owner);
    const extras = validateAdditionalMounts(
      group.containerConfig?.additionalMounts ?? [],
      loadMountAllowlist(config.configDir),
      { isMain: group.isMain, config },
    );
    const mounts = buildMountPlan(group, config, extras.allowed).map((m) =>
      m.containerPath === CONTAINER_PATHS.proxy ? { ...m, hostPath: proxies.socketDir(folder) } : m,
    );
    const plants = plantPlan({
      nonce,
      decoyDir: fixtures.decoyDir,
      skills: skillNames(config),
      isMain: group.isMain,
    });
    /** The steps the probe reports done; unknown when it never reported (stopped, crashed). */
    let planted: Set<string> | 'unknown' = 'unknown';
    /** Host files the audit's own actions make in the group's folders (a run log, a media file). */
    const made: { runLog?: string; media?: string } = {};
    cleanup.push(() => {
      cleanupProblems.push(...removePlants(plants, planted, mounts, made.runLog ? [made.runLog] : []));
      const { media } = made;
      if (media) inToAgent(config, folder, [MEDIA_DIR], (dir) => dir.remove(media));
      clearInput(config, folder);
      removeQuarantined(config, nonce);
      // from-agent/ and the skills exactly as the next run would find them.
      prepareGroupDirs(group, config, user);
      prepareContainerSkills(config, folder, owner);
    });

    const secrets = readSecrets(config.envFile);
    const secretValues = [
      secrets.ANTHROPIC_API_KEY,
      secrets.CLAUDE_CODE_OAUTH_TOKEN,
      secrets.ANTHROPIC_AUTH_TOKEN,
    ]
      .filter((s): s is string => !!s)
      .filter((s, i, all) => all.indexOf(s) === i);
    const refused = policyRefusedTarget(config, folder, nonce);
    const probeConfig: ProbeConfig = {
      expectedUid: user.uid,
      sentinels: fixtures.sentinels,
      secrets: secretValues.map(fingerprint),
      scanRoots: [
        ...['/run', '/home', '/tmp', '/etc', '/root'],
        ...['/workspace/group', '/workspace/ipc', '/workspace/inbox', '/workspace/global', '/workspace'],
        ...['/app', '/opt', '/srv', '/mnt', '/media', '/var'],
      ],
      limits: { maxFiles: 20_000, maxFileBytes: 4 * 2 ** 20, maxTotalBytes: 256 * 2 ** 20, budgetMs: 20_000 },
      direct: [
        { id: 'canary', host: '127.0.0.1', port: canary.port },
        ...(config.localChannelPort
          ? [{ id: 'local-chat', host: '127.0.0.1', port: config.localChannelPort }]
          : []),
        { id: 'private', host: '10.0.0.1', port: 80 },
        { id: 'metadata', host: '169.254.169.254', port: 80 },
      ],
      egressSocket: `${CONTAINER_PATHS.proxy}/egress.sock`,
      egress: [
        { id: 'metadata', method: 'CONNECT', target: '169.254.169.254:80' },
        { id: 'metadata-http', method: 'GET', target: 'http://169.254.169.254/latest/meta-data/' },
        { id: 'loopback', method: 'CONNECT', target: `127.0.0.1:${canary.port}` },
        { id: 'private', method: 'CONNECT', target: '10.0.0.1:80' },
        ...(refused ? [{ id: 'policy', method: 'CONNECT' as const, target: refused }] : []),
      ],
      projectPath: CONTAINER_PATHS.project,
      plants,
    };

    const decoyBefore = snapshotTree(fixtures.decoyDir);
    const spec: SandboxSpec = {
      name: `nanoclaw-${folder}-${Date.now()}`,
      image: config.containerImage,
      mounts,
      env: { TZ: config.timezone, HOME: SANDBOX_HOME, NODE_OPTIONS: probePreload() },
      workdir: CONTAINER_PATHS.group,
      labels: { [INSTANCE_LABEL]: config.instanceId, [GROUP_LABEL]: folder },
      user,
    };
    const run = await runSandbox(
      runtime,
      spec,
      probeSource(probeConfig),
      options.sandboxTimeoutMs ?? 120_000,
      options.signal,
    );
    if (options.signal?.aborted) throw new AuditError('interrupted; what the audit had made is removed');
    const report = parseReport(run);
    planted = new Set(report.plants.filter((p) => p.ok).map((p) => p.id));

    const hostActions = await runHostActions(
      {
        home: config.home,
        configDir: config.configDir,
        folder,
        nonce,
        user,
        startedAt: started,
        mediaFile: fixtures.mediaFile,
        actions: HOST_ACTIONS.filter((a) => a !== 'writeAvailableGroups' || group.isMain),
      },
      { verbose: options.verbose ?? false },
    );
    made.runLog = hostActions.runLogName;
    made.media = hostActions.mediaName;

    const rows = judge({
      runtime: runtime.kind,
      isMain: group.isMain,
      expectedUid: user.uid,
      projectPath: CONTAINER_PATHS.project,
      report,
      secretValues,
      plants,
      hostActions,
      decoyChanges: diffTrees(decoyBefore, snapshotTree(fixtures.decoyDir)),
      decoyMarker: fixtures.decoyMarker,
      canaryConnections: canary.connections(),
      proxyDials,
      hostLimits: run.hostLimits,
    });
    return {
      group: folder,
      runtime: runtime.kind,
      durationMs: Date.now() - started,
      rows,
      failed: anyFailed(rows),
      cleanupProblems,
    };
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (err) {
        cleanupProblems.push((err as Error).message);
      }
    }
  }
}

/** IPC entries the watcher refused during the audit are kept in data/ipc/errors/: the audit's go. */
function removeQuarantined(config: Config, nonce: string): void {
  if (!fs.existsSync(path.join(config.ipcDir, 'errors'))) return;
  withSafeDir(config.ipcDir, ['errors'], {}, (errors) => {
    for (const name of errors.list()) if (name.includes(`audit-${nonce}`)) errors.remove(name);
  });
}
