import crypto from 'node:crypto';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import { openStore } from '../db/store.js';
import { readSecrets } from '../env-file.js';
import { ensureGroupFolder, ensureMainGroup } from '../groups.js';
import { FROM_AGENT } from '../ipc/to-agent.js';
import { IpcWatcher } from '../ipc/watcher.js';
import { loadNetworkPolicy, policyForGroup } from '../proxy/network-policy.js';
import { ProxyManager } from '../proxy/proxy-manager.js';
import { withSafeDir } from '../safe-fs.js';
import { prepareAgentSkills } from '../sandbox/agent-skills.js';
import { loadMountAllowlist, validateAdditionalMounts } from '../sandbox/mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS as C, prepareGroupDirs } from '../sandbox/mount-plan.js';
import { writeRunLog } from '../sandbox/sandbox-runner.js';
import * as rt from '../sandbox/runtime.js';
import type { RegisteredGroup } from '../types.js';
import { probeSource, sha256Hex, REPORT_MARKER, type PlantStep, type ProbeReport } from './probe.js';
import { judge, SHELL } from './verdicts.js';

// Where the host writes or reads; inbox, global, rootfs and project plants must be refused.
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
empty-tasks rm $ipc/tasks
link-tasks symlink $ipc/tasks $D
${skills.map((s) => `remove-skill-${s} rm $session/skills/${s}\nlink-skill-${s} symlink $session/skills/${s} $D`).join('\n')}
link-session-entry symlink $session/.$M $D
inbox-write write $inbox/$M.txt
inbox-input-write write $inbox/input/9-$M.json
global-write write $global/$M.txt
rootfs-usr write /usr/$M.txt
rootfs-etc write /etc/$M.txt
${isMain ? 'project-write write $project/$M.txt' : ''}`
    .split('\n')
    .filter(Boolean)
    .map((row) => {
      const [id = '', op = '', at = '', to] = row.replace(/\$(\w+)/g, (_, v) => vars[v]!).split(' ');
      return { id, op, path: at, to };
    });
}

// Undone link-safely, each only while still of its kind.
function removePlant({ op, path: at, to = '' }: PlantStep, mounts: rt.MountSpec[]) {
  const m = mounts.find((m) => !m.mask && at.startsWith(`${m.containerPath}/`));
  const segments = path.posix.relative(m?.containerPath ?? '', at).split('/');
  const name = segments.pop()!;
  if (m)
    withSafeDir(m.hostPath, segments, {}, (dir) => {
      const st = dir.lstat(name);
      const aside = path.posix.basename(to);
      if (op === 'rename' && dir.lstat(aside)) {
        dir.remove(name);
        dir.moveTo(aside, dir, name);
      } else if ({ symlink: st?.isSymbolicLink(), fifo: st?.isFIFO(), write: st?.isFile() }[op])
        dir.remove(name);
    });
}

const none = () => undefined;

// A sandbox set up as for the agent runs the probe; the host acts on its plants; the evidence is judged.
export async function runAudit(
  config: Config,
  runtime: rt.SandboxRuntime,
  asked: string | undefined,
  warn: (s: string) => void,
) {
  const store = openStore(config.dbPath);
  if (!asked) ensureMainGroup(store, config);
  const group = asked ? store.groups.byFolder(asked) : store.groups.main();
  store.close();
  if (!group) throw new Error(`no group has the folder '${asked}': see nanoclaw groups list`);
  if (!(await runtime.imageExists(config.containerImage)))
    throw new Error('no agent image: run nanoclaw build');
  const { folder, isMain } = group;
  const user = rt.sandboxUser(config);
  const owner = rt.hostIsRoot() ? user : undefined;

  // Sentinels no sandbox may see; a decoy folder the links point at.
  const nonce = crypto.randomBytes(4).toString('hex');
  const mark = `audit-${nonce}`;
  const workDir = path.join(config.dataDir, mark);
  const decoyDir = path.join(workDir, 'decoy');
  const { configDir, ipcDir } = config;
  const sentinels = Object.entries({
    data: config.dataDir,
    store: config.storeDir,
    hostTmp: os.tmpdir(),
    config: configDir,
    otherGroup: config.groupsDir,
    otherIpc: ipcDir,
    otherSession: config.sessionsDir,
  }).map(([id, base]) => ({
    id,
    hostPath: path.join(base, mark, 'audit.txt'),
    token: `nanoclaw-${mark}-${id}`,
  }));
  const cleanup: (() => unknown)[] = [
    () => sentinels.forEach((s) => fs.rmSync(path.dirname(s.hostPath), { recursive: true, force: true })),
  ];
  try {
    const decoy = JSON.stringify({ type: 'message', chatJid: DECOY, text: 'audit' });
    for (const [file, text] of [
      ...sentinels.map((s) => [s.hostPath, s.token]),
      ...['payload.json', '1-decoy.json'].map((f) => [path.join(decoyDir, f), decoy]),
    ] as [string, string][]) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text, { flag: 'wx' });
    }
    const snapshot = () =>
      fs
        .readdirSync(decoyDir, { recursive: true, encoding: 'utf8' })
        .map((rel) => `${rel} ${fs.lstatSync(path.join(decoyDir, rel)).ctimeMs}`)
        .join() + fs.lstatSync(decoyDir).ctimeMs;
    const decoyBefore = snapshot();

    const canary = net.createServer().listen(0, '127.0.0.1');
    await once(canary, 'listening');
    cleanup.push(() => canary.close());
    const canaryAt = `127.0.0.1:${(canary.address() as net.AddressInfo).port}`;
    const proxyDials: string[] = [];
    const proxies = new ProxyManager({
      proxyDir: workDir, // a running host's sockets stay untouched
      configDir,
      readSecrets: () => ({}),
      tokensUsedToday: () => 0,
      recordUsage: none,
      dailyTokenBudget: none,
      lookup: () => Promise.reject(new Error('audit: no lookups')),
      connectTcp: (target) => {
        proxyDials.push(`${target.host}:${target.port}`);
        const socket = new net.Socket();
        process.nextTick(() => socket.destroy(new Error('audit: no dials')));
        return socket;
      },
      ...(owner && { sandboxUid: config.sandboxUid }),
    });
    cleanup.push(() => proxies.stop());
    await proxies.ensureGroup(folder);

    const prepare = () => (prepareGroupDirs(group, config, user), prepareAgentSkills(config, folder, owner));
    const mounts = buildMountPlan(
      group,
      config,
      validateAdditionalMounts(group.containerConfig?.additionalMounts ?? [], loadMountAllowlist(configDir), {
        isMain,
        config,
      }).allowed,
    ).map((m) => (m.containerPath === C.proxy ? { ...m, hostPath: proxies.socketDir(folder) } : m));
    const plants = plantPlan(nonce, decoyDir, prepare(), isMain);
    cleanup.push(
      () => {
        withSafeDir(ipcDir, ['errors'], { create: true }, (errors) => {
          for (const name of errors.list()) if (name.includes(nonce)) errors.remove(name);
        });
        prepare();
      },
      ...plants.map((p) => () => removePlant(p, mounts)),
    );

    const keys = Object.values(readSecrets(config.envFile)).filter((k) => /^[\w-]{16,}$/.test(k!));
    const policy = policyForGroup(loadNetworkPolicy(configDir), folder);
    const denied = policy.deny.find((d) => !d.startsWith('*.')) ?? policy.deny[0]?.replace(/^\*\./, 'audit.');
    const refused = policy.noNetwork ? 'example.com' : (denied ?? (policy.allow && `${mark}.invalid`));
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
    let [stdout, stderr] = ['', ''];
    proc.stdout?.on('data', (chunk: Buffer) => (stdout += chunk));
    proc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk).slice(-2000)));
    proc.stdin?.on('error', none);
    proc.stdin?.end(
      probeSource({
        sentinels,
        secrets: keys.map((k) => sha256Hex(k!)),
        scanRoots: '/run /home /tmp /etc /root /workspace /app /opt /srv /mnt /media /var'.split(' '),
        dials: {
          'direct-canary': canaryAt,
          'direct-private': '10.0.0.1:80',
          'direct-metadata': '169.254.169.254:80',
          'egress-metadata': 'CONNECT 169.254.169.254:80',
          'egress-metadata-http': 'GET http://169.254.169.254/latest/meta-data/',
          'egress-loopback': `CONNECT ${canaryAt}`,
          'egress-private': 'CONNECT 10.0.0.1:80',
          ...(refused && { 'egress-policy': `CONNECT ${refused}:443` }),
        },
        egressSocket: `${C.proxy}/egress.sock`,
        shell: Object.fromEntries(Object.entries(SHELL).map(([id, [, cmd]]) => [id, cmd])),
        plants,
      }),
    );
    const timer = setTimeout(() => void runtime.stop(name).catch(none), 120_000);
    const [code] = await once(proc, 'close');
    clearTimeout(timer);

    const at = stdout.indexOf(REPORT_MARKER);
    if (at < 0) throw new Error(`no probe report; exit code ${code}:\n${stderr.trim()}`);
    const report: ProbeReport = JSON.parse(stdout.slice(at + REPORT_MARKER.length));

    const hostActions = await runHostActions(config, group, nonce);
    const rows = judge({
      isMain,
      expectedUid: user.uid,
      report,
      secrets: keys.length,
      hostActions,
      decoyChanged: snapshot() !== decoyBefore,
      proxyDials,
    });
    return { folder, rows };
  } finally {
    for (const step of cleanup.reverse())
      try {
        await step();
      } catch (err) {
        warn((err as Error).message);
      }
  }
}

// The host's own code acts on the plants, each action in a forked child with a deadline: a FIFO could block
// its thread. 'unsafe': the IPC handler got a decoy.
export type HostAction = {
  action: string;
  outcome: 'done' | 'error' | 'blocked' | 'crashed' | 'unsafe';
  detail: string;
};
const DECOY = 'audit@decoy';
const CHILD = '--nanoclaw-audit-action';

export async function runHostActions(
  config: Config,
  group: RegisteredGroup,
  nonce: string,
  { timeoutMs = 10_000, only = Object.keys(ACTIONS) } = {},
) {
  const self = fileURLToPath(import.meta.url);
  const results: HostAction[] = [];
  for (const action of only) {
    const child = fork(self, [CHILD, action, JSON.stringify({ config, group, nonce })], {
      execArgv: self.endsWith('.ts') ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    let report: HostAction = { action, outcome: 'crashed', detail: 'no report' };
    let timer: NodeJS.Timeout | undefined;
    // The deadline covers the action, not the start-up.
    child.on('message', (m: HostAction | 'start') => {
      if (m !== 'start') return void (report = m);
      timer = setTimeout(() => {
        report = { action, outcome: 'blocked', detail: `no return in ${timeoutMs} ms` };
        child.kill('SIGKILL');
      }, timeoutMs);
    });
    await once(child, 'exit');
    clearTimeout(timer);
    results.push(report);
  }
  return results;
}

type Ctx = { config: Config; group: RegisteredGroup; nonce: string };
const ACTIONS: Record<string, (c: Ctx) => void | object> = {
  prepareGroupDirs: (c) => prepareGroupDirs(c.group, c.config, rt.sandboxUser(c.config)),
  ipcScan: async ({ config, group, nonce }) => {
    let read = false;
    const watcher = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: 3_600_000,
      groups: () => [group],
      handle: async (_kind, payload) => {
        read ||= JSON.stringify(payload).includes(DECOY);
        return { ok: false, error: 'audit' };
      },
    });
    watcher.syncWatchers();
    const left = () =>
      withSafeDir(config.ipcDir, [group.folder, FROM_AGENT, 'messages'], {}, (dir) =>
        dir.list().filter((name) => name.includes(nonce)),
      );
    for (const end = Date.now() + 3000; left().length && Date.now() < end;) await sleep(25);
    watcher.stop();
    if (read) return { outcome: 'unsafe', detail: 'read a decoy through a link' };
    if (left().length) return { outcome: 'error', detail: `left: ${left()}` };
  },
  writeRunLog: ({ config, group }) => void writeRunLog(config.groupsDir, group.folder, Date.now(), 'audit\n'),
  ensureGroupFolder: (c) => ensureGroupFolder(c.config, c.group),
  prepareAgentSkills: (c) =>
    void prepareAgentSkills(c.config, c.group.folder, rt.hostIsRoot() ? rt.sandboxUser(c.config) : undefined),
};

if (process.argv[2] === CHILD) {
  const [action = '', ctx = ''] = process.argv.slice(3);
  const send = (message: HostAction | 'start') =>
    new Promise((resolve) => process.send!(message, undefined, undefined, resolve));
  await send('start');
  // Link-safe code refuses by throwing; the verdict rests on the decoy.
  const extra = await Promise.resolve()
    .then(() => ACTIONS[action]!(JSON.parse(ctx)))
    .catch((err: Error) => ({ outcome: 'error' as const, detail: err.message }));
  await send({ action, outcome: 'done', detail: '', ...extra });
  process.exit(0);
}
