import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAvailableGroups } from '../available-groups.js';
import { loadConfig } from '../config.js';
import { openStore } from '../db/store.js';
import { ensureGroupFolder } from '../groups.js';
import { clearInput, FROM_AGENT, publishMedia, writeInput } from '../ipc/to-agent.js';
import { IpcWatcher } from '../ipc/watcher.js';
import { withSafeDir } from '../safe-fs.js';
import { prepareContainerSkills } from '../sandbox/container-skills.js';
import { prepareGroupDirs } from '../sandbox/mount-plan.js';
import { writeRunLog } from '../sandbox/run-log.js';
import { hostIsRoot, type SandboxUser } from '../sandbox/runtime.js';
import { writeTaskSnapshot } from '../scheduler/task-snapshot.js';

/**
 * After the probe has planted its links and FIFOs, the host does what it does in production,
 * through the real functions. They run in a child process: a host that followed a FIFO would
 * block its only thread for good, and only a separate process can be timed out and killed, so a
 * block shows up as a failed verdict instead of a hung audit.
 */

export const HOST_ACTIONS = [
  'prepareGroupDirs',
  'clearInput',
  'writeInput',
  'writeTaskSnapshot',
  'writeAvailableGroups',
  'ipcScan',
  'writeRunLog',
  'ensureGroupFolder',
  'prepareContainerSkills',
  'publishMedia',
] as const;
export type HostAction = (typeof HOST_ACTIONS)[number];

export interface HostActionsInput {
  home: string;
  configDir: string;
  folder: string;
  nonce: string;
  user: SandboxUser;
  startedAt: number;
  mediaFile: string;
  actions: HostAction[];
}

export interface ActionResult {
  action: HostAction;
  outcome: 'done' | 'error' | 'blocked' | 'crashed';
  ms: number;
  detail: string;
}

export interface HostActionsOutcome {
  results: ActionResult[];
  /** What the IPC handler was given (JSON, cut short): a decoy's content here means a link was read. */
  payloads: string[];
  runLogName?: string;
  mediaName?: string;
}

export type ChildMessage =
  | { type: 'start'; action: HostAction }
  | { type: 'done'; result: ActionResult; payloads?: string[]; runLogName?: string; mediaName?: string };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs in the child: each action in turn, reporting before and after. */
export async function runHostActionsChild(
  input: HostActionsInput,
  send: (m: ChildMessage) => Promise<void>,
): Promise<void> {
  const config = loadConfig({
    ...process.env,
    NANOCLAW_HOME: input.home,
    NANOCLAW_CONFIG_DIR: input.configDir,
  });
  const store = openStore(config.dbPath);
  try {
    const group = store.groups.byFolder(input.folder);
    if (!group) throw new Error(`no group ${input.folder}`);
    const owner = hostIsRoot() ? input.user : undefined;
    for (const action of input.actions) {
      await send({ type: 'start', action }); // delivered first, so the parent's deadline starts before
      const started = Date.now();
      const extra: Omit<Extract<ChildMessage, { type: 'done' }>, 'type' | 'result'> = {};
      let detail = '';
      let outcome: ActionResult['outcome'] = 'done';
      try {
        switch (action) {
          case 'prepareGroupDirs':
            prepareGroupDirs(group, config, input.user);
            break;
          case 'clearInput':
            clearInput(config, group.folder);
            break;
          case 'writeInput':
            writeInput(config, group.folder, 'audit follow-up');
            break;
          case 'writeTaskSnapshot':
            writeTaskSnapshot(config, group, store.tasks.all());
            break;
          case 'writeAvailableGroups':
            if (group.isMain) writeAvailableGroups(config, group, store);
            else detail = 'main only';
            break;
          case 'ipcScan': {
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
            const left = () => ipcLeftovers(config.ipcDir, group.folder, input.nonce);
            for (const deadline = Date.now() + 3000; left().length > 0 && Date.now() < deadline;)
              await sleep(25);
            watcher.stop();
            const remaining = left();
            detail = remaining.length ? `still there: ${remaining.join(', ')}` : 'planted entries refused';
            if (remaining.length) outcome = 'error';
            extra.payloads = payloads;
            break;
          }
          case 'writeRunLog': {
            const written = writeRunLog({
              groupsDir: config.groupsDir,
              folder: group.folder,
              sandboxName: `nanoclaw-${group.folder}-audit`,
              runtime: 'audit',
              startedAt: input.startedAt,
              durationMs: 0,
              input: {
                prompt: '',
                groupFolder: group.folder,
                chatJid: group.jid,
                isMain: group.isMain,
                assistantName: config.assistantName,
              },
              mounts: [],
              envKeys: [],
              outcome: null,
              result: { status: 'success', result: null },
            });
            if (written) extra.runLogName = path.basename(written);
            else outcome = 'error';
            break;
          }
          case 'ensureGroupFolder':
            ensureGroupFolder(config, group);
            break;
          case 'prepareContainerSkills':
            detail = `copied: ${prepareContainerSkills(config, group.folder, owner).join(', ') || 'none'}`;
            break;
          case 'publishMedia':
            extra.mediaName = publishMedia(
              config,
              group.folder,
              input.mediaFile,
              path.basename(input.mediaFile),
            );
            break;
        }
      } catch (err) {
        // Refusing (UnsafeEntryError) is how link-safe code says no; the verdict rests on the decoy.
        outcome = 'error';
        detail = (err as Error).message;
      }
      await send({ type: 'done', result: { action, outcome, ms: Date.now() - started, detail }, ...extra });
    }
  } finally {
    store.close();
  }
}

/** Planted entries still in from-agent/messages, and tasks/ if it is not a real folder again. */
function ipcLeftovers(ipcDir: string, folder: string, nonce: string): string[] {
  return withSafeDir(ipcDir, [folder, FROM_AGENT], {}, (from) => {
    const left: string[] = [];
    if (!from.lstat('tasks')?.isDirectory()) left.push('tasks');
    if (!from.lstat('messages')?.isDirectory()) return [...left, 'messages'];
    from.withSubdir('messages', {}, (messages) => {
      for (const name of messages.list()) if (name.includes(`audit-${nonce}`)) left.push(`messages/${name}`);
    });
    return left;
  });
}

/**
 * Runs the actions in a child, each with a deadline. A child past its deadline is killed and the
 * action marked blocked; the remaining actions go on in a fresh child.
 */
export async function runHostActions(
  input: HostActionsInput,
  options: { timeoutMs?: number; verbose?: boolean } = {},
): Promise<HostActionsOutcome> {
  const self = fileURLToPath(import.meta.url);
  const ext = path.extname(self);
  const entry = path.join(path.dirname(self), `host-actions-child${ext}`);
  const outcome: HostActionsOutcome = { results: [], payloads: [] };
  let remaining = [...input.actions];
  while (remaining.length > 0) {
    const child = fork(entry, [], {
      execArgv: ext === '.ts' ? ['--import', 'tsx'] : [],
      env: { ...process.env, LOG_LEVEL: options.verbose ? (process.env.LOG_LEVEL ?? 'info') : 'silent' },
      stdio: ['ignore', 'ignore', options.verbose ? 'inherit' : 'ignore', 'ipc'],
    });
    const ended = await new Promise<{ stuck?: HostAction; code: number | null }>((resolve) => {
      let timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // start-up
      child.on('message', (raw) => {
        const message = raw as ChildMessage;
        clearTimeout(timer);
        if (message.type === 'start') {
          const action = message.action;
          timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve({ stuck: action, code: null });
          }, options.timeoutMs ?? 10_000);
          return;
        }
        outcome.results.push(message.result);
        outcome.payloads.push(...(message.payloads ?? []));
        outcome.runLogName ??= message.runLogName;
        outcome.mediaName ??= message.mediaName;
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code }); // a no-op after a kill for a deadline: that promise is settled already
      });
      child.send({ ...input, actions: remaining }, (err) => {
        if (err) child.kill('SIGKILL');
      });
    });
    const done = new Set(outcome.results.map((r) => r.action));
    remaining = remaining.filter((a) => !done.has(a));
    const next = remaining[0];
    if (!next) break;
    const blocked = ended.stuck === next;
    outcome.results.push({
      action: next,
      outcome: blocked ? 'blocked' : 'crashed',
      ms: blocked ? (options.timeoutMs ?? 10_000) : 0,
      detail: blocked
        ? 'did not return in time (a host thread blocked on a plant never would)'
        : `host process exited (${ended.code})`,
    });
    remaining.shift();
  }
  return outcome;
}
