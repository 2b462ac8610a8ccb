import { fork } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../config.js';
import { openStore, type Store } from '../db/store.js';
import { ensureGroupFolder } from '../groups.js';
import { clearInput, FROM_AGENT, writeInput } from '../ipc/to-agent.js';
import { IpcWatcher } from '../ipc/watcher.js';
import { withSafeDir } from '../safe-fs.js';
import { prepareAgentSkills } from '../sandbox/agent-skills.js';
import { prepareGroupDirs } from '../sandbox/mount-plan.js';
import { writeRunLog } from '../sandbox/run-log.js';
import { hostIsRoot, sandboxUser } from '../sandbox/runtime.js';
import { writeTaskSnapshot } from '../scheduler/task-snapshot.js';
import type { RegisteredGroup } from '../types.js';

// On what the probe planted, the host does what it does in production, each action in a child (this file,
// forked) with a deadline: a host that opened a FIFO would block its only thread, and only a process can be
// killed. `payloads`: what the IPC handler was given; a decoy's content there means a link was read.
export type HostAction = {
  action: string;
  outcome: 'done' | 'error' | 'blocked' | 'crashed';
  detail: string;
  payloads?: string[];
};
const CHILD = '--nanoclaw-audit-action';

export async function runHostActions(
  config: Config,
  folder: string,
  nonce: string,
  { timeoutMs = 10_000, only = Object.keys(ACTIONS) } = {},
): Promise<HostAction[]> {
  const self = fileURLToPath(import.meta.url);
  const { home: NANOCLAW_HOME, configDir: NANOCLAW_CONFIG_DIR } = config;
  const results: HostAction[] = [];
  for (const action of only) {
    const child = fork(self, [CHILD, action, folder, nonce], {
      execArgv: self.endsWith('.ts') ? ['--import', 'tsx'] : [],
      env: { ...process.env, NANOCLAW_HOME, NANOCLAW_CONFIG_DIR, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    let report: HostAction | undefined;
    let timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // start-up
    // 'start' comes right before the action: the deadline covers the action alone.
    child.on('message', (message: HostAction | 'start') => {
      clearTimeout(timer);
      if (message !== 'start') report = message;
      else
        timer = setTimeout(() => {
          report = { action, outcome: 'blocked', detail: `no return in ${timeoutMs} ms` };
          child.kill('SIGKILL');
        }, timeoutMs);
    });
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    results.push(report ?? { action, outcome: 'crashed', detail: `exit code ${code}` });
  }
  return results;
}

type Ctx = { config: Config; store: Store; group: RegisteredGroup; nonce: string };
type Extra = Partial<HostAction> | void;
const ACTIONS: Record<string, (c: Ctx) => Extra | Promise<Extra>> = {
  prepareGroupDirs: (c) => prepareGroupDirs(c.group, c.config, sandboxUser(c.config)),
  clearInput: (c) => clearInput(c.config, c.group.folder),
  writeInput: (c) => void writeInput(c.config, c.group.folder, 'audit follow-up'),
  writeTaskSnapshot: (c) => writeTaskSnapshot(c.config, c.group, c.store.tasks.all()),
  ipcScan: async ({ config, group, nonce }) => {
    const payloads: string[] = [];
    const watcher = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: 3_600_000,
      groups: () => [group],
      handle: async (_kind, payload) => {
        payloads.push(JSON.stringify(payload).slice(0, 500));
        return { ok: false, error: 'the audit acts on no request' };
      },
    });
    watcher.syncWatchers();
    // Done when the scan has taken every planted entry out of messages/.
    const left = () =>
      withSafeDir(config.ipcDir, [group.folder, FROM_AGENT, 'messages'], {}, (dir) =>
        dir.list().filter((name) => name.includes(nonce)),
      );
    for (const end = Date.now() + 3000; left().length && Date.now() < end;) await sleep(25);
    watcher.stop();
    const rest = left();
    return rest.length ? { payloads, outcome: 'error', detail: `left: ${rest}` } : { payloads };
  },
  writeRunLog: ({ config, group: { folder, jid, isMain } }) => {
    const written = writeRunLog({
      groupsDir: config.groupsDir,
      folder,
      sandboxName: 'audit',
      runtime: 'audit',
      startedAt: Date.now(),
      durationMs: 0,
      input: { prompt: '', groupFolder: folder, chatJid: jid, isMain, assistantName: '' },
      mounts: [],
      envKeys: [],
      outcome: null,
      result: { status: 'success', result: null },
    });
    if (!written) return { outcome: 'error' };
  },
  ensureGroupFolder: (c) => ensureGroupFolder(c.config, c.group),
  prepareAgentSkills: (c) =>
    void prepareAgentSkills(c.config, c.group.folder, hostIsRoot() ? sandboxUser(c.config) : undefined),
};

if (process.argv[2] === CHILD) {
  const [action = '', folder = '', nonce = ''] = process.argv.slice(3);
  const send = (message: HostAction | 'start') =>
    new Promise((resolve) => process.send!(message, undefined, undefined, resolve));
  const config = loadConfig();
  const store = openStore(config.dbPath);
  const group = store.groups.byFolder(folder)!;
  await send('start');
  let extra: Extra;
  try {
    extra = await ACTIONS[action]!({ config, store, group, nonce });
  } catch (err) {
    // Refusing (UnsafeEntryError) is how link-safe code says no; the verdict rests on the decoy.
    extra = { outcome: 'error', detail: (err as Error).message };
  }
  await send({ action, outcome: 'done', detail: '', ...extra });
  process.exit(0);
}
