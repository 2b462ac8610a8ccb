import crypto from 'node:crypto';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
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
import { judge, probeSource, sha256Hex, REPORT_MARKER, SHELL } from './probe.js';

// Where the host writes or reads; inbox, global, rootfs and project plants must be refused.
export function plantPlan(nonce: string, decoyDir: string, skills: string[], isMain: boolean) {
  const vars: Record<string, string> = { ...C, D: decoyDir, M: `audit-${nonce}` };
  return `aside-memory mv $group/CLAUDE.md $group/CLAUDE.md.$M
link-memory ln -s $D/created-memory.md $group/CLAUDE.md
aside-logs mv $group/logs $group/logs.$M
link-logs ln -s $D $group/logs
link-group-entry ln -s $D $group/.$M
fifo-message mkfifo $ipc/messages/9-$M.json
link-message ln -s $D/payload.json $ipc/messages/8-$M.json
empty-tasks rm -r $ipc/tasks
link-tasks ln -s $D $ipc/tasks
${skills.map((s) => `remove-skill-${s} rm -r $session/skills/${s}\nlink-skill-${s} ln -s $D $session/skills/${s}`).join('\n')}
link-session-entry ln -s $D $session/.$M
inbox-write touch $inbox/$M.txt
global-write touch $global/$M.txt
rootfs-usr touch /usr/$M.txt
${isMain ? 'project-write touch $project/$M.txt' : ''}`
    .split('\n')
    .filter(Boolean)
    .map((row) => {
      const [id = '', cmd = ''] = row.replace(/\$(\w+)/g, (_, v) => vars[v]!).split(/ (.*)/);
      return { id, cmd };
    });
}

// Undone link-safely: a moved original comes back, anything else but a folder goes.
function removePlant(cmd: string, mounts: rt.MountSpec[]) {
  const [verb, ...args] = cmd.split(' ');
  const mv = verb === 'mv';
  const at = (mv ? args[0] : args.at(-1))!;
  const m = mounts.find((m) => !m.mask && at.startsWith(`${m.containerPath}/`));
  if (!m) return;
  const segments = path.posix.relative(m.containerPath, at).split('/');
  const name = segments.pop()!;
  withSafeDir(m.hostPath, segments, {}, (dir) => {
    const aside = path.posix.basename(args.at(-1)!);
    if (mv ? !dir.lstat(aside) : dir.lstat(name)?.isDirectory()) return;
    dir.remove(name);
    if (mv) dir.moveTo(aside, dir, name);
  });
}

const none = () => undefined;
const DECOY = 'audit@decoy';
const DECOYS = ['payload.json', '1-decoy.json'];
const owner = (config: Config) => (rt.hostIsRoot() ? rt.sandboxUser(config) : undefined);

// A sandbox set up as for the agent runs the probe; the host acts on its plants; the evidence is judged.
export async function runAudit(
  config: Config,
  runtime: rt.SandboxRuntime,
  asked: string | undefined,
  err: NodeJS.WritableStream,
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
  const { configDir, ipcDir } = config;

  // Sentinels no sandbox may see; a decoy folder the links point at.
  const nonce = crypto.randomBytes(4).toString('hex');
  const mark = `audit-${nonce}`;
  const workDir = path.join(config.dataDir, mark);
  const decoyDir = path.join(workDir, 'decoy');
  const sentinels = Object.entries({
    data: config.dataDir,
    store: config.storeDir,
    hostTmp: os.tmpdir(),
    config: configDir,
    otherGroup: config.groupsDir,
    otherIpc: ipcDir,
    otherSession: config.sessionsDir,
  }).map(([id, base]) => ({ id, hostPath: path.join(base, mark, 'audit.txt'), token: `${mark}-${id}` }));
  const cleanup: (() => unknown)[] = [
    () => sentinels.forEach((s) => fs.rmSync(path.dirname(s.hostPath), { recursive: true, force: true })),
  ];
  try {
    const decoy = JSON.stringify({ type: 'message', chatJid: DECOY, text: 'audit' });
    for (const [file, data] of [
      ...sentinels.map((s) => [s.hostPath, s.token]),
      ...DECOYS.map((f) => [path.join(decoyDir, f), decoy]),
    ] as [string, string][]) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data, { flag: 'wx' });
    }
    const snapshot = () =>
      ['', ...DECOYS]
        .map((f) => fs.lstatSync(path.join(decoyDir, f), { throwIfNoEntry: false })?.ctimeMs)
        .join();
    const decoyBefore = snapshot();

    const canary = net.createServer().listen(0, '127.0.0.1');
    await once(canary, 'listening');
    cleanup.push(() => canary.close());
    const canaryAt = `127.0.0.1:${(canary.address() as net.AddressInfo).port}`;
    const proxies = new ProxyManager({
      proxyDir: workDir, // a running host's sockets stay untouched
      configDir,
      readSecrets: () => ({}),
      tokensUsedToday: () => 0,
      recordUsage: none,
      dailyTokenBudget: none,
      sandboxUid: owner(config)?.uid,
    });
    cleanup.push(() => proxies.stop());
    await proxies.ensureGroup(folder);

    const prepare = () => (
      prepareGroupDirs(group, config, user),
      prepareAgentSkills(config, folder, owner(config))
    );
    const { allowed } = validateAdditionalMounts(
      group.containerConfig?.additionalMounts ?? [],
      loadMountAllowlist(configDir),
      { isMain, config },
    );
    const mounts = buildMountPlan(group, config, allowed).map((m) =>
      m.containerPath === C.proxy ? { ...m, hostPath: proxies.socketDir(folder) } : m,
    );
    const plants = plantPlan(nonce, decoyDir, prepare(), isMain);
    cleanup.push(
      () => {
        withSafeDir(ipcDir, ['errors'], { create: true }, (errors) => {
          for (const name of errors.list()) if (name.includes(nonce)) errors.remove(name);
        });
        prepare();
      },
      ...plants.map((p) => () => removePlant(p.cmd, mounts)),
    );

    const secrets = Object.values(readSecrets(config.envFile)).flatMap((k) =>
      k && /^[\w-]{16,}$/.test(k) ? [sha256Hex(k)] : [],
    );
    const policy = policyForGroup(loadNetworkPolicy(configDir), folder);
    const denied = policy.deny[0]?.replace(/^\*\./, 'audit.') ?? (policy.allow && `${mark}.invalid`);
    const refused = policy.noNetwork ? 'example.com' : denied;
    const name = `nanoclaw-${folder}-${Date.now()}`;
    const proc = runtime.spawn({
      name,
      image: config.containerImage,
      mounts,
      env: {},
      workdir: C.group,
      labels: { [rt.INSTANCE_LABEL]: config.instanceId, [rt.GROUP_LABEL]: folder },
      user,
      command: ['node', '--input-type=module', '-'],
    });
    const output = Promise.all([text(proc.stdout!), text(proc.stderr!)]);
    proc.stdin!.on('error', none).end(
      probeSource({
        sentinels,
        secrets,
        scanRoots: '/run /home /tmp /etc /root /workspace /app /opt /srv /mnt /media /var'.split(' '),
        dials: {
          'direct-canary': canaryAt,
          'direct-private': '10.0.0.1:80',
          'direct-metadata': '169.254.169.254:80',
          'egress-metadata': 'CONNECT 169.254.169.254:80',
          'egress-loopback': `CONNECT ${canaryAt}`,
          ...(refused && { 'egress-policy': `CONNECT ${refused}:443` }),
        },
        egressSocket: `${C.proxy}/egress.sock`,
        shell: SHELL, // JSON keeps the commands
        plants,
      }),
    );
    setTimeout(() => void runtime.stop(name).catch(none), 120_000).unref();
    await once(proc, 'close');
    const [stdout, stderr] = await output;
    const at = stdout.indexOf(REPORT_MARKER);
    if (at < 0) throw new Error(`no probe report: ${stderr.trim()}`);
    const rows = judge({
      isMain,
      expectedUid: user.uid,
      report: JSON.parse(stdout.slice(at + REPORT_MARKER.length)),
      secrets: secrets.length,
      hostActions: await runHostActions({ config, group, nonce }),
      decoyChanged: snapshot() !== decoyBefore,
    });
    return { folder, rows };
  } finally {
    for (const step of cleanup.reverse())
      try {
        await step();
      } catch (e) {
        err.write(`could not clean up: ${(e as Error).message}\n`);
      }
  }
}

// Each host action runs in a forked child with a deadline, as a FIFO could block its thread.
export type HostAction = { action: string; outcome: string; detail: string };
const CHILD = '--nanoclaw-audit-action';

export async function runHostActions(ctx: Ctx, timeoutMs = 10_000) {
  const self = fileURLToPath(import.meta.url);
  const results: HostAction[] = [];
  for (const action of Object.keys(ACTIONS)) {
    const child = fork(self, [CHILD, action, JSON.stringify(ctx)], {
      execArgv: self.endsWith('.ts') ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    let report = { action, outcome: 'crashed', detail: 'no report' };
    // The deadline covers the action, not the start-up.
    child.on('message', (m: HostAction | 'start') => {
      if (m !== 'start') return void (report = m);
      setTimeout(() => {
        if (child.kill('SIGKILL'))
          report = { action, outcome: 'blocked', detail: `no return in ${timeoutMs} ms` };
      }, timeoutMs).unref();
    });
    await once(child, 'exit');
    results.push(report);
  }
  return results;
}

type Ctx = { config: Config; group: RegisteredGroup; nonce: string };
const ACTIONS: Record<string, (c: Ctx) => unknown> = {
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
  prepareAgentSkills: (c) => void prepareAgentSkills(c.config, c.group.folder, owner(c.config)),
};

if (process.argv[2] === CHILD) {
  const [action = '', ctx = ''] = process.argv.slice(3);
  const send = (message: unknown) =>
    new Promise((resolve) => process.send!(message, undefined, undefined, resolve));
  await send('start');
  // Link-safe code refuses by throwing; the verdict rests on the decoy.
  const extra = await Promise.resolve()
    .then(() => ACTIONS[action]!(JSON.parse(ctx)))
    .catch((err: Error) => ({ outcome: 'error', detail: err.message }));
  await send({ action, outcome: 'done', detail: '', ...(extra as object) });
  process.exit(0);
}
