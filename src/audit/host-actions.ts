import { fork } from 'node:child_process';
import path from 'node:path';
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
import { hostIsRoot, sandboxUser, type SandboxUser } from '../sandbox/runtime.js';
import { writeTaskSnapshot } from '../scheduler/task-snapshot.js';
import type { RegisteredGroup } from '../types.js';

/*
 * After the probe has planted its links and FIFOs, the host does what it does in production, through
 * the real functions, each in a child process (this file, forked) with a deadline: a host that opened
 * a FIFO would block its only thread for good, and only a process can be killed.
 */
type Outcome = 'done' | 'error' | 'blocked' | 'crashed';
type ActionResult = { action: string; outcome: Outcome; detail: string };
/** `payloads`: what the IPC handler was given; a decoy's content there means a link was read. */
type ChildReport = ActionResult & { payloads?: string[]; runLog?: string };
export type HostActionsOutcome = { results: ActionResult[]; payloads: string[]; runLog?: string };
const CHILD = '--nanoclaw-audit-action';

export async function runHostActions(
  config: Config,
  folder: string,
  nonce: string,
  { timeoutMs = 10_000, verbose = false, only = undefined as string[] | undefined } = {},
): Promise<HostActionsOutcome> {
  const self = fileURLToPath(import.meta.url);
  const outcome: HostActionsOutcome = { results: [], payloads: [] };
  for (const action of only ?? Object.keys(ACTIONS)) {
    const child = fork(self, [CHILD, action, folder, nonce], {
      execArgv: self.endsWith('.ts') ? ['--import', 'tsx'] : [],
      env: {
        ...process.env,
        NANOCLAW_HOME: config.home,
        NANOCLAW_CONFIG_DIR: config.configDir,
        LOG_LEVEL: verbose ? process.env.LOG_LEVEL : 'silent',
      },
      stdio: ['ignore', 'ignore', verbose ? 'inherit' : 'ignore', 'ipc'],
    });
    const {
      payloads = [],
      runLog,
      ...result
    } = await new Promise<ChildReport>((resolve) => {
      let report: ChildReport | undefined;
      let timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // start-up
      // 'start' comes right before the action: the deadline covers the action alone.
      child.on('message', (message: ChildReport | 'start') => {
        clearTimeout(timer);
        if (message !== 'start') report = message;
        else
          timer = setTimeout(() => {
            report = { action, outcome: 'blocked', detail: `no return in ${timeoutMs} ms` };
            child.kill('SIGKILL');
          }, timeoutMs);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(report ?? { action, outcome: 'crashed', detail: `exit code ${code}` });
      });
    });
    outcome.results.push(result);
    outcome.payloads.push(...payloads);
    outcome.runLog ??= runLog;
  }
  return outcome;
}

type Ctx = {
  config: Config;
  store: Store;
  group: RegisteredGroup;
  folder: string;
  user: SandboxUser;
  nonce: string;
};
type Extra = Partial<ChildReport> | void;
/** In the order the audit runs them. */
const ACTIONS: Record<string, (c: Ctx) => Extra | Promise<Extra>> = {
  prepareGroupDirs: (c) => prepareGroupDirs(c.group, c.config, c.user),
  clearInput: (c) => clearInput(c.config, c.folder),
  writeInput: (c) => void writeInput(c.config, c.folder, 'audit follow-up'),
  writeTaskSnapshot: (c) => writeTaskSnapshot(c.config, c.group, c.store.tasks.all()),
  ipcScan: async ({ config, group, folder, nonce }) => {
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
    // Planted entries still in from-agent/messages, and tasks/ if it is not a real folder again.
    const leftovers = () =>
      withSafeDir(config.ipcDir, [folder, FROM_AGENT], {}, (from) => {
        const left = ['tasks', 'messages'].filter((kind) => !from.lstat(kind)?.isDirectory());
        if (left.includes('messages')) return left;
        return from.withSubdir('messages', {}, (dir) => [
          ...left,
          ...dir.list().filter((n) => n.includes(nonce)),
        ]);
      });
    let left = leftovers();
    for (const end = Date.now() + 3000; left.length && Date.now() < end; left = leftovers())
      await new Promise((resolve) => setTimeout(resolve, 25));
    watcher.stop();
    return {
      payloads,
      ...(left.length ? { outcome: 'error', detail: `left: ${left.join(', ')}` } : {}),
    } as const;
  },
  writeRunLog: ({ config, group, folder }) => {
    const written = writeRunLog({
      groupsDir: config.groupsDir,
      folder,
      sandboxName: 'audit',
      runtime: 'audit',
      startedAt: Date.now(),
      durationMs: 0,
      input: { prompt: '', groupFolder: folder, chatJid: group.jid, isMain: group.isMain, assistantName: '' },
      mounts: [],
      envKeys: [],
      outcome: null,
      result: { status: 'success', result: null },
    });
    return written ? { runLog: path.basename(written) } : { outcome: 'error' };
  },
  ensureGroupFolder: (c) => ensureGroupFolder(c.config, c.group),
  prepareAgentSkills: (c) => void prepareAgentSkills(c.config, c.folder, hostIsRoot() ? c.user : undefined),
};

if (process.argv[2] === CHILD) {
  const [action = '', folder = '', nonce = ''] = process.argv.slice(3);
  const send = (message: ChildReport | 'start') =>
    new Promise<void>((resolve) => process.send!(message, undefined, undefined, () => resolve()));
  const config = loadConfig();
  const store = openStore(config.dbPath);
  const group = store.groups.byFolder(folder)!;
  await send('start');
  let extra: Extra;
  try {
    extra = await ACTIONS[action]!({ config, store, group, folder, nonce, user: sandboxUser(config) });
  } catch (err) {
    // Refusing (UnsafeEntryError) is how link-safe code says no; the verdict rests on the decoy.
    extra = { outcome: 'error', detail: (err as Error).message };
  }
  await send({ action, outcome: 'done', detail: '', ...extra });
  process.exit(0);
}
