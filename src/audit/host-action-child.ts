import path from 'node:path';
import { loadConfig } from '../config.js';
import { openStore } from '../db/store.js';
import { ensureGroupFolder } from '../groups.js';
import { clearInput, FROM_AGENT, writeInput } from '../ipc/to-agent.js';
import { IpcWatcher } from '../ipc/watcher.js';
import { withSafeDir } from '../safe-fs.js';
import { prepareAgentSkills } from '../sandbox/agent-skills.js';
import { prepareGroupDirs } from '../sandbox/mount-plan.js';
import { writeRunLog } from '../sandbox/run-log.js';
import { hostIsRoot } from '../sandbox/runtime.js';
import { writeTaskSnapshot } from '../scheduler/task-snapshot.js';
import type { ChildInput, ChildReport, HostAction } from './host-actions.js';

/** The child process of runHostActions: runs one host action, its input from the parent over IPC. */
type Extra = Partial<ChildReport> | void;
const send = (message: ChildReport | 'start') =>
  new Promise<void>((resolve) => process.send?.(message, undefined, undefined, () => resolve()));

async function run({ action, ...input }: ChildInput & { action: HostAction }): Promise<void> {
  const config = loadConfig({
    ...process.env,
    NANOCLAW_HOME: input.home,
    NANOCLAW_CONFIG_DIR: input.configDir,
  });
  const store = openStore(config.dbPath);
  const { folder, user } = input;
  const group = store.groups.byFolder(folder);
  if (!group) throw new Error(`no group ${folder}`);
  /** Planted entries still in from-agent/messages, and tasks/ if it is not a real folder again. */
  const leftovers = () =>
    withSafeDir(config.ipcDir, [folder, FROM_AGENT], {}, (from) => {
      const left = ['tasks', 'messages'].filter((kind) => !from.lstat(kind)?.isDirectory());
      if (left.includes('messages')) return left;
      return from.withSubdir('messages', {}, (dir) => [
        ...left,
        ...dir.list().filter((n) => n.includes(input.nonce)),
      ]);
    });
  const actions: Record<HostAction, () => Extra | Promise<Extra>> = {
    prepareGroupDirs: () => prepareGroupDirs(group, config, user),
    clearInput: () => clearInput(config, folder),
    writeInput: () => void writeInput(config, folder, 'audit follow-up'),
    writeTaskSnapshot: () => writeTaskSnapshot(config, group, store.tasks.all()),
    ipcScan: async () => {
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
      let left = leftovers();
      for (const end = Date.now() + 3000; left.length > 0 && Date.now() < end; left = leftovers())
        await new Promise((resolve) => setTimeout(resolve, 25));
      watcher.stop();
      return { payloads, ...(left.length ? { outcome: 'error', detail: `left: ${left.join(', ')}` } : {}) };
    },
    writeRunLog: () => {
      const written = writeRunLog({
        groupsDir: config.groupsDir,
        folder,
        sandboxName: 'audit',
        runtime: 'audit',
        startedAt: Date.now(),
        durationMs: 0,
        input: {
          prompt: '',
          groupFolder: folder,
          chatJid: group.jid,
          isMain: group.isMain,
          assistantName: '',
        },
        mounts: [],
        envKeys: [],
        outcome: null,
        result: { status: 'success', result: null },
      });
      return written ? { runLog: path.basename(written) } : { outcome: 'error' };
    },
    ensureGroupFolder: () => ensureGroupFolder(config, group),
    prepareAgentSkills: () => void prepareAgentSkills(config, folder, hostIsRoot() ? user : undefined),
  };
  await send('start');
  let extra: Extra;
  try {
    extra = await actions[action]();
  } catch (err) {
    // Refusing (UnsafeEntryError) is how link-safe code says no; the verdict rests on the decoy.
    extra = { outcome: 'error', detail: (err as Error).message };
  }
  await send({ action, outcome: 'done', detail: '', ...extra });
  store.close();
}

process.once('message', (input: ChildInput & { action: HostAction }) => {
  run(input).then(
    () => process.disconnect(),
    (err: unknown) => {
      process.stderr.write(`audit host action failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
