import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config.js';
import { isValidFolder } from '../contract/ipc.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { ensureMainGroup } from '../groups.js';
import { clearInput, FROM_AGENT } from '../ipc/to-agent.js';
import { loadNetworkPolicy, policyForGroup } from '../proxy/network-policy.js';
import { ProxyManager } from '../proxy/proxy-manager.js';
import { UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import { prepareAgentSkills } from '../sandbox/agent-skills.js';
import { loadMountAllowlist, validateAdditionalMounts } from '../sandbox/mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS as C, prepareGroupDirs } from '../sandbox/mount-plan.js';
import * as rt from '../sandbox/runtime.js';
import { runHostActions } from './host-actions.js';
import { fingerprint, probeReportSchema, probeSource, REPORT_MARKER, type PlantStep } from './probe.js';
import { anyFailed, judge, SHELL } from './verdicts.js';

// Each plant sits where the host later writes or reads; inbox, global, rootfs and project ones are refused.
export function plantPlan(nonce: string, decoyDir: string, skills: string[], isMain: boolean): PlantStep[] {
  const vars: Record<string, string> = { ...C, D: decoyDir, M: `audit-${nonce}` };
  return `aside-memory rename $group/CLAUDE.md $group/CLAUDE.md.$M
link-memory symlink $group/CLAUDE.md $D/created-memory.md
aside-logs rename $group/logs $group/logs.$M
link-logs symlink $group/logs $D
link-group-entry symlink $group/.$M $D
fifo-message fifo $ipc/messages/9-$M.json
link-message-file symlink $ipc/messages/8-$M.json $D/payload.json
link-message-dir symlink $ipc/messages/7-$M.json $D
empty-tasks rmdir $ipc/tasks
link-tasks symlink $ipc/tasks $D
${skills.map((s) => `remove-skill-${s} rmtree $session/skills/${s}\nlink-skill-${s} symlink $session/skills/${s} $D`).join('\n')}
link-session-entry symlink $session/.$M $D
inbox-write write $inbox/$M.txt
inbox-link symlink $inbox/$M.json $D
inbox-move rename $inbox/input $inbox/input.$M
inbox-input-write write $inbox/input/9-$M.json
global-write write $global/$M.txt
rootfs-usr write /usr/$M.txt
rootfs-etc write /etc/$M.txt
${isMain ? 'project-write write $project/$M.txt' : ''}`
    .split('\n')
    .filter(Boolean)
    .map((row) => {
      const [id = '', op = '', at = '', to] = row
        .split(' ')
        .map((f) => f.replace(/\$(\w+)/g, (_, v) => vars[v]!));
      return { id, op, path: at, to };
    });
}

// Undone in reverse, link-safely through their mount: only what the probe made (all if it never
// reported) and still of its kind (a folder the host put in place of a link is the group's now).
function removePlants(plants: PlantStep[], planted: Set<string> | null, mounts: rt.MountSpec[]) {
  const problems: string[] = [];
  for (const { id, op, path: at, to = '' } of plants.toReversed()) {
    const mount = mounts
      .filter((m) => !m.mask && at.startsWith(`${m.containerPath}/`))
      .sort((a, b) => b.containerPath.length - a.containerPath.length)[0];
    if (!mount) continue;
    const segments = [
      path.basename(mount.hostPath),
      ...path.posix.relative(mount.containerPath, at).split('/'),
    ];
    const name = segments.pop()!;
    const aside = path.posix.basename(to);
    try {
      withSafeDir(path.dirname(mount.hostPath), segments, {}, (dir) => {
        const st = dir.lstat(name);
        const kind = { symlink: st?.isSymbolicLink(), fifo: st?.isFIFO(), write: st?.isFile() }[op];
        if (op === 'rename' && dir.lstat(aside)) {
          dir.remove(name);
          dir.moveTo(aside, dir, name);
        } else if (kind && (!planted || planted.has(id))) dir.remove(name);
      });
    } catch (err) {
      if (!(err instanceof UnsafeEntryError) && (err as NodeJS.ErrnoException).code !== 'ENOENT')
        problems.push(`${at}: ${(err as Error).message}`);
    }
  }
  return problems;
}

// bwrap hides /sys: the pids and memory limits of its cgroup (v2 or v1), as the host sees them.
function hostLimitsOf(pid: number) {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const dirs = read(`/proc/${pid}/cgroup`)
    .split('\n')
    .flatMap((line) => {
      const [, controllers = '', group = ''] = line.split(':');
      return controllers ? controllers.split(',').map((c) => c + group) : [group];
    });
  const find = (...files: string[]) =>
    dirs.flatMap((d) => files.map((f) => read(`/sys/fs/cgroup/${d}/${f}`))).find(Boolean) ?? '';
  return { 'pids-limit': find('pids.max'), 'memory-limit': find('memory.max', 'memory.limit_in_bytes') };
}

// A sandbox prepared as SandboxRunner does runs the probe instead of the agent, the host acts on what it
// planted, and the evidence is judged. The audit's egress proxy resolves no names and dials nothing.
export async function runAudit({
  config,
  runtime,
  folder: asked,
  signal,
}: {
  config: Config;
  runtime: rt.SandboxRuntime;
  folder?: string;
  signal?: AbortSignal;
}) {
  const store = openStore(config.dbPath);
  if (asked === undefined) ensureMainGroup(store, config); // as the first start does
  const group = asked === undefined ? store.groups.main() : store.groups.byFolder(asked);
  store.close();
  if (!group || !isValidFolder(group.folder))
    throw new Error(`no registered group has the folder '${asked ?? 'main'}' (see nanoclaw groups list)`);
  if (!(await runtime.imageExists(config.containerImage)))
    throw new Error(
      `the agent ${runtime.kind === 'bwrap' ? 'runner' : 'image'} is missing: run nanoclaw build`,
    );
  const { folder, isMain } = group;
  const user = rt.sandboxUser(config);
  const owner = rt.hostIsRoot() ? user : undefined;

  // Sentinels where no sandbox may look, and a decoy folder the probe's links point at.
  const nonce = crypto.randomBytes(4).toString('hex');
  const mark = `audit-${nonce}`;
  const token = `nanoclaw-audit-${crypto.randomBytes(8).toString('hex')}`;
  const workDir = path.join(config.dataDir, mark);
  const decoyDir = path.join(workDir, 'decoy');
  const sentinels = Object.entries({
    data: `${workDir}.txt`,
    store: path.join(config.storeDir, `${mark}.txt`),
    hostTmp: path.join(os.tmpdir(), `nanoclaw-${mark}.txt`),
    config: path.join(config.configDir, `${mark}.txt`),
    otherGroup: path.join(config.groupsDir, mark, 'audit.txt'),
    otherIpc: path.join(config.ipcDir, mark, FROM_AGENT, 'messages', 'audit.txt'),
    otherSession: path.join(config.sessionsDir, mark, '.claude', 'audit.txt'),
  }).map(([id, hostPath]) => ({ id, hostPath, token: `${token}-${id}` }));
  const made = [
    ...sentinels.map((s) => s.hostPath),
    workDir,
    ...[config.groupsDir, config.ipcDir, config.sessionsDir].map((d) => path.join(d, mark)),
  ];
  if (!fs.existsSync(config.configDir)) made.push(config.configDir);
  const cleanupProblems: string[] = [];
  const cleanup: (() => unknown)[] = [
    () => made.forEach((p) => fs.rmSync(p, { recursive: true, force: true })),
  ];
  try {
    // The decoys are a valid IPC message, should the host read one through a link.
    const decoy = JSON.stringify({ type: 'message', chatJid: 'audit@decoy', text: `${token}-decoy` });
    for (const [file, text] of [
      ...sentinels.map((s) => [s.hostPath, `${s.token}\n`]),
      ...['payload.json', '1-decoy.json', 'sub/2-decoy.json'].map((f) => [path.join(decoyDir, f), decoy]),
    ]) {
      fs.mkdirSync(path.dirname(file!), { recursive: true });
      fs.writeFileSync(file!, text!, { flag: 'wx' });
    }
    // ctime moves with any change.
    const snapshot = () =>
      ['.', ...fs.readdirSync(decoyDir, { recursive: true, encoding: 'utf8' })].map(
        (rel) => `${rel} ${fs.lstatSync(path.join(decoyDir, rel)).ctimeMs}`,
      );
    const decoyBefore = snapshot();

    const canary = net.createServer((socket) => socket.destroy());
    await once(canary.listen(0, '127.0.0.1'), 'listening');
    cleanup.push(() => new Promise((resolve) => canary.close(resolve)));
    const canaryPort = (canary.address() as net.AddressInfo).port;
    const proxyDials: string[] = [];
    const proxies = new ProxyManager({
      proxyDir: workDir, // a running host's sockets stay untouched
      configDir: config.configDir,
      readSecrets: () => ({}),
      recordUsage: () => undefined,
      tokensUsedToday: () => 0,
      dailyTokenBudget: () => undefined,
      lookup: () => Promise.reject(new Error('the audit resolves no names')),
      connectTcp: (target) => {
        proxyDials.push(`${target.host}:${target.port}`);
        const socket = new net.Socket();
        process.nextTick(() => socket.destroy(new Error('the audit dials nothing')));
        return socket;
      },
      ...(owner && { sandboxUid: config.sandboxUid }),
    });
    cleanup.push(() => proxies.stop());
    await proxies.ensureGroup(folder);

    prepareGroupDirs(group, config, user);
    clearInput(config, folder);
    const skills = prepareAgentSkills(config, folder, owner);
    const { allowed } = validateAdditionalMounts(
      group.containerConfig?.additionalMounts ?? [],
      loadMountAllowlist(config.configDir),
      { isMain, config },
    );
    const mounts = buildMountPlan(group, config, allowed).map((m) =>
      m.containerPath === C.proxy ? { ...m, hostPath: proxies.socketDir(folder) } : m,
    );
    const plants = plantPlan(nonce, decoyDir, skills, isMain);
    let planted: Set<string> | null = null;
    cleanup.push(() => {
      cleanupProblems.push(...removePlants(plants, planted, mounts));
      clearInput(config, folder);
      // Entries the IPC watcher refused are kept in data/ipc/errors/.
      withSafeDir(config.ipcDir, ['errors'], { create: true }, (errors) => {
        for (const name of errors.list()) if (name.includes(nonce)) errors.remove(name);
      });
      prepareGroupDirs(group, config, user);
      prepareAgentSkills(config, folder, owner);
    });

    const { ANTHROPIC_BASE_URL: _url, ...secrets } = readSecrets(config.envFile);
    const keys = Object.values(secrets) as string[];
    const policy = policyForGroup(loadNetworkPolicy(config.configDir), folder);
    const denied = policy.deny.find((d) => !d.startsWith('*.')) ?? policy.deny[0]?.replace(/^\*\./, 'audit.');
    // A target the group's network policy refuses by name, so it is never resolved.
    const refused = policy.noNetwork ? 'example.com' : (denied ?? (policy.allow && `${mark}.invalid`));
    const source = probeSource({
      sentinels,
      secrets: keys.map(fingerprint),
      scanRoots:
        `/run /home /tmp /etc /root ${C.group} ${C.ipc} ${C.inbox} ${C.global} /workspace /app /opt /srv /mnt /media /var`.split(
          ' ',
        ),
      dials: {
        'direct-canary': `127.0.0.1:${canaryPort}`,
        'direct-local-chat': `127.0.0.1:${config.localChannelPort}`,
        'direct-private': '10.0.0.1:80',
        'direct-metadata': '169.254.169.254:80',
        'egress-metadata': 'CONNECT 169.254.169.254:80',
        'egress-metadata-http': 'GET http://169.254.169.254/latest/meta-data/',
        'egress-loopback': `CONNECT 127.0.0.1:${canaryPort}`,
        'egress-private': 'CONNECT 10.0.0.1:80',
        ...(refused && { 'egress-policy': `CONNECT ${refused}:443` }),
      },
      egressSocket: `${C.proxy}/egress.sock`,
      shell: Object.fromEntries(Object.entries(SHELL).map(([id, [, cmd]]) => [id, cmd])),
      plants,
    });

    const name = `nanoclaw-${folder}-${Date.now()}`;
    const proc = runtime.spawn({
      name,
      image: config.containerImage,
      mounts,
      env: { TZ: config.timezone, HOME: rt.SANDBOX_HOME },
      workdir: C.group,
      labels: { [rt.INSTANCE_LABEL]: config.instanceId, [rt.GROUP_LABEL]: folder },
      user,
      command: ['node', '--input-type=module', '-'],
    });
    // bwrap moves itself into the sandbox's cgroup before it starts anything: read it now.
    const hostLimits: Record<string, string> =
      runtime.kind === 'bwrap' && proc.pid ? hostLimitsOf(proc.pid) : {};
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(0, 2 ** 23)));
    proc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    proc.stdin?.on('error', () => undefined); // a sandbox that died at once: its exit says why
    proc.stdin?.end(source);
    const halt = AbortSignal.any([AbortSignal.timeout(120_000), ...(signal ? [signal] : [])]);
    halt.onabort = () => void runtime.stop(name).catch(() => undefined);
    const [code] = await once(proc, 'close');
    halt.onabort = null;
    if (signal?.aborted) throw new Error('interrupted; what the audit had made is removed');

    const line = stdout.split('\n').find((l) => l.startsWith(REPORT_MARKER)) ?? '';
    let report;
    try {
      report = probeReportSchema.parse(JSON.parse(line.slice(REPORT_MARKER.length)));
    } catch {
      throw new Error(`the probe gave no valid report; sandbox exit code ${code}:\n${stderr.trim()}`);
    }
    planted = new Set(report.plants.filter((p) => p.ok).map((p) => p.id));
    for (const [id, out] of Object.entries(hostLimits))
      if (!report.shell[id]?.out) report.shell[id] = { code: 0, out };

    const hostActions = await runHostActions(config, folder, nonce);
    const decoyAfter = snapshot();
    const changed = (a: string[], b: string[]) => a.filter((e) => !b.includes(e));
    const rows = judge({
      isMain,
      expectedUid: user.uid,
      report,
      secrets: keys.length,
      hostActions,
      decoyChanges: [...changed(decoyBefore, decoyAfter), ...changed(decoyAfter, decoyBefore)],
      decoyRead: hostActions.some((a) => a.payloads?.some((p) => p.includes(`${token}-decoy`))),
      proxyDials,
    });
    return { group: folder, runtime: runtime.kind, rows, failed: anyFailed(rows), cleanupProblems };
  } finally {
    for (const step of cleanup.reverse())
      try {
        await step();
      } catch (err) {
        cleanupProblems.push((err as Error).message);
      }
  }
}
