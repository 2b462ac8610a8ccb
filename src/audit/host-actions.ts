import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxUser } from '../sandbox/runtime.js';

/**
 * After the probe has planted its links and FIFOs, the host does what it does in production,
 * through the real functions (host-action-child.ts), each in a child process with a deadline: a
 * host that opened a FIFO would block its only thread for good, and only a separate process can
 * be killed, so a block shows as a failed verdict instead of a hung audit.
 */
export const HOST_ACTIONS = [
  'prepareGroupDirs',
  'clearInput',
  'writeInput',
  'writeTaskSnapshot',
  'ipcScan',
  'writeRunLog',
  'ensureGroupFolder',
  'prepareAgentSkills',
] as const;
export type HostAction = (typeof HOST_ACTIONS)[number];
export type ChildInput = {
  home: string;
  configDir: string;
  folder: string;
  nonce: string;
  user: SandboxUser;
};
export type ActionResult = {
  action: HostAction;
  outcome: 'done' | 'error' | 'blocked' | 'crashed';
  detail: string;
};
/** `payloads`: what the IPC handler was given; a decoy's content there means a link was read. */
export type ChildReport = ActionResult & { payloads?: string[]; runLog?: string };
export type HostActionsOutcome = { results: ActionResult[]; payloads: string[]; runLog?: string };

function runInChild(input: ChildInput & { action: HostAction }, timeoutMs: number, verbose: boolean) {
  const self = fileURLToPath(import.meta.url);
  const ext = path.extname(self);
  const child = fork(path.join(path.dirname(self), `host-action-child${ext}`), {
    execArgv: ext === '.ts' ? ['--import', 'tsx'] : [],
    env: { ...process.env, LOG_LEVEL: verbose ? process.env.LOG_LEVEL : 'silent' },
    stdio: ['ignore', 'ignore', verbose ? 'inherit' : 'ignore', 'ipc'],
  });
  return new Promise<ChildReport>((resolve) => {
    let report: ChildReport | undefined;
    let blocked = false;
    let timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // start-up
    // 'start' comes after start-up, right before the action: the deadline covers the action only.
    child.on('message', (message: ChildReport | 'start') => {
      clearTimeout(timer);
      if (message !== 'start') report = message;
      else
        timer = setTimeout(() => {
          blocked = true;
          child.kill('SIGKILL');
        }, timeoutMs);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      const { action } = input;
      if (blocked) resolve({ action, outcome: 'blocked', detail: `no return in ${timeoutMs} ms` });
      else resolve(report ?? { action, outcome: 'crashed', detail: `exit code ${code}` });
    });
    child.send(input, (err) => err && child.kill('SIGKILL'));
  });
}

export async function runHostActions(
  input: ChildInput & { actions: readonly HostAction[] },
  options: { timeoutMs?: number; verbose?: boolean } = {},
): Promise<HostActionsOutcome> {
  const outcome: HostActionsOutcome = { results: [], payloads: [] };
  for (const action of input.actions) {
    const {
      payloads = [],
      runLog,
      ...result
    } = await runInChild({ ...input, action }, options.timeoutMs ?? 10_000, !!options.verbose);
    outcome.results.push(result);
    outcome.payloads.push(...payloads);
    outcome.runLog ??= runLog;
  }
  return outcome;
}
