import type { ChildProcess } from 'node:child_process';
import type { Config } from '../config.js';
import { isValidFolder } from '../contract/ipc.js';
import { failure, type Failure, type PermanentCause } from '../failure-notice.js';
import { clearInput, writeClose } from '../ipc/to-agent.js';
import { logger } from '../logger.js';
import type { AgentInput, AgentOutput, AgentRunHooks, AgentRunner, RegisteredGroup } from '../types.js';
import { validateAdditionalMounts, type MountAllowlist } from './mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS, prepareGroupDirs } from './mount-plan.js';
import { AgentOutputParser } from './output-parser.js';
import { writeRunLog } from './run-log.js';
import {
  GROUP_LABEL,
  INSTANCE_LABEL,
  SANDBOX_HOME,
  sandboxUser,
  type SandboxRuntime,
  type SandboxSpec,
  type SandboxUser,
} from './runtime.js';

export interface SandboxRunnerDeps {
  config: Config;
  runtime: SandboxRuntime;
  /** Read at every run, so allowlist edits apply without a restart. */
  allowlist: () => MountAllowlist | null;
  prepare?(group: RegisteredGroup, user: SandboxUser): Promise<void>;
  /** The hard timeout is at least IDLE_TIMEOUT plus this (30 s): `_close` comes first. */
  closeGraceMs?: number;
  /** What the model proxy saw go wrong for the group since a time. */
  modelFailure?(folder: string, since: number): Failure | undefined;
}

export interface SandboxRunOutcome {
  outputs: AgentOutput[];
  newSessionId?: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  overflowed: boolean;
  spawnError?: Error;
  stderrTail: string;
  stdoutTail: string;
}

const TAIL_CHARS = 64 * 1024;
const fail = (error: string): AgentOutput => ({ status: 'error', result: null, error });

function finalOutput(outcome: SandboxRunOutcome, hardTimeoutMs: number): AgentOutput {
  const last = outcome.outputs.at(-1);
  const session = outcome.newSessionId !== undefined ? { newSessionId: outcome.newSessionId } : {};
  const failed = (error: string) => ({ ...fail(error), result: last?.result ?? null, ...session });
  if (outcome.spawnError) return fail(`Could not start the sandbox: ${outcome.spawnError.message}`);
  if (outcome.overflowed) return failed('Agent output exceeded 10 MiB; the sandbox was stopped');
  if (outcome.timedOut) {
    // Output already reached the chat: an idle sandbox has simply finished.
    if (last) return { status: 'success', result: last.result, ...session };
    return fail(`The agent produced no output within ${hardTimeoutMs} ms and was stopped`);
  }
  if (outcome.exitCode !== 0) {
    // The runner's own error (no credentials, budget spent) picks the failure notice.
    if (last?.status === 'error' && last.error) return { ...last, ...session };
    const how = outcome.signal ? `signal ${outcome.signal}` : `code ${outcome.exitCode}`;
    const stderr = outcome.stderrTail.trim().split('\n').slice(-10).join('\n').slice(-1000);
    return failed(`Sandbox exited with ${how}${stderr ? `: ${stderr}` : ''}`);
  }
  return { ...(last ?? { status: 'success', result: null }), ...session };
}

export class SandboxRunner implements AgentRunner {
  private readonly running = new Set<string>();
  /** Stopped by the person: the run ends as done, not as a crash to retry. */
  private readonly stopped = new Set<string>();

  constructor(private readonly deps: SandboxRunnerDeps) {}

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    const { config, runtime } = this.deps;
    const { folder } = group;
    if (!isValidFolder(folder)) return fail(`Invalid group folder: ${folder}`);
    const startedAt = Date.now();
    const name = `nanoclaw-${folder}-${startedAt}`;
    const hardTimeoutMs = Math.max(
      group.containerConfig?.timeoutMs ?? config.containerTimeoutMs,
      config.idleTimeoutMs + (this.deps.closeGraceMs ?? 30_000),
    );
    let spec: SandboxSpec;
    try {
      const user = sandboxUser(config);
      prepareGroupDirs(group, config, user);
      try {
        clearInput(config, folder);
      } catch (err) {
        // A run that may read a stale follow-up beats no run; the cursor keeps answers unique.
        logger.warn({ group: folder, err: String(err) }, 'cannot clear stale sandbox input');
      }
      await this.deps.prepare?.(group, user);
      const extra = group.containerConfig?.additionalMounts ?? [];
      const { isMain } = group;
      const { allowed } = validateAdditionalMounts(extra, this.deps.allowlist(), { isMain, config });
      spec = {
        name,
        image: config.containerImage,
        mounts: buildMountPlan(group, config, allowed),
        env: {
          TZ: config.timezone,
          HOME: SANDBOX_HOME,
          NANOCLAW_MIN_TASK_INTERVAL_MS: String(config.minTaskIntervalMs),
        },
        workdir: CONTAINER_PATHS.group,
        labels: { [INSTANCE_LABEL]: config.instanceId, [GROUP_LABEL]: folder },
        user,
      };
    } catch (err) {
      logger.error({ group: folder, err: String(err) }, 'sandbox preparation failed');
      return fail(`Could not prepare the sandbox: ${String(err)}`);
    }

    let outcome: SandboxRunOutcome | null = null;
    let result: AgentOutput;
    try {
      const proc = runtime.spawn(spec);
      logger.info({ group: folder, name, runtime: runtime.kind }, 'sandbox started');
      this.running.add(name);
      try {
        hooks.onStarted?.(name);
      } catch (err) {
        logger.error({ name, err: String(err) }, 'onStarted hook failed');
      }
      proc.stdin?.on('error', (err) => logger.debug({ name, err: String(err) }, 'stdin closed early'));
      proc.stdin?.end(`${JSON.stringify(input)}\n`);
      const closeAfterFirstMs = input.isScheduledTask ? config.taskCloseDelayMs : null;
      outcome = await this.supervise(proc, name, folder, hooks, hardTimeoutMs, closeAfterFirstMs);
      result = this.stopped.delete(name)
        ? { status: 'success', result: null }
        : finalOutput(outcome, hardTimeoutMs);
    } catch (err) {
      result = fail(`Could not start the sandbox: ${String(err)}`);
    } finally {
      this.running.delete(name);
    }
    if (result.status === 'error' && !result.failure)
      result = { ...result, failure: await this.classify(folder, startedAt, outcome) };
    const durationMs = Date.now() - startedAt;
    writeRunLog({
      groupsDir: config.groupsDir,
      folder,
      sandboxName: name,
      runtime: runtime.kind,
      startedAt,
      durationMs,
      input,
      mounts: spec.mounts,
      envKeys: Object.keys(spec.env),
      outcome,
      result,
    });
    const log = { group: folder, name, durationMs, status: result.status };
    if (result.status === 'error')
      logger.warn({ ...log, error: result.error, cause: result.failure?.cause }, 'sandbox run failed');
    else logger.info(log, 'sandbox run finished');
    return result;
  }

  /** Why a run failed, from what knows: the model proxy, then the runtime itself. */
  private async classify(folder: string, since: number, outcome: SandboxRunOutcome | null): Promise<Failure> {
    const fromModel = this.deps.modelFailure?.(folder, since);
    if (fromModel) return fromModel;
    if (outcome?.timedOut) return failure('timeout');
    if (await this.holds('runtime-missing'))
      return failure(outcome?.stdoutTail ? 'runtime-restarting' : 'runtime-missing');
    if (await this.holds('image-missing')) return failure('image-missing');
    return failure(outcome && !outcome.spawnError ? 'sandbox-crash' : 'unknown');
  }

  /** Whether a runtime cause holds now; undefined: not the runtime's cause. */
  async holds(cause: PermanentCause): Promise<boolean | undefined> {
    const { runtime, config } = this.deps;
    if (cause === 'image-missing')
      return !(await runtime.imageExists(config.containerImage).catch(() => true));
    if (cause !== 'runtime-missing') return undefined;
    return runtime.ensureRunning().then(
      () => false,
      () => true,
    );
  }

  /** Asks the sandbox to close when idle; stops it at the hard timeout or the output cap. */
  private supervise(
    proc: ChildProcess,
    name: string,
    folder: string,
    hooks: AgentRunHooks,
    hardTimeoutMs: number,
    closeAfterFirstMs: number | null,
  ): Promise<SandboxRunOutcome> {
    const { config, runtime } = this.deps;
    const parser = new AgentOutputParser();
    const out: SandboxRunOutcome = {
      outputs: [],
      exitCode: null,
      signal: null,
      timedOut: false,
      overflowed: false,
      stderrTail: '',
      stdoutTail: '',
    };
    // onOutput is async: the chain keeps delivery in order.
    let chain = Promise.resolve();
    let idleTimer: NodeJS.Timeout | undefined;
    let hardTimer: NodeJS.Timeout | undefined;
    let closeTimer: NodeJS.Timeout | undefined;
    let killing: Promise<void> | undefined;
    const close = (why: string) => {
      try {
        writeClose(config, folder);
        logger.info({ name, why }, 'asked sandbox to close');
      } catch (err) {
        logger.warn({ name, err: String(err) }, 'could not write close sentinel');
      }
    };
    const kill = (why: string) => {
      killing ??= (async () => {
        logger.warn({ name, why }, 'stopping sandbox');
        await runtime
          .stop(name)
          .catch((err) => logger.warn({ name, err: String(err) }, 'runtime stop failed'));
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      })();
    };
    const armTimers = () => {
      clearTimeout(idleTimer);
      clearTimeout(hardTimer);
      idleTimer = setTimeout(() => close('idle'), config.idleTimeoutMs);
      hardTimer = setTimeout(() => {
        out.timedOut = true;
        kill('hard timeout');
      }, hardTimeoutMs);
    };
    const tail = (text: string, chunk: Buffer) => (text + chunk.toString('utf8')).slice(-TAIL_CHARS);

    return new Promise((resolve) => {
      // The first of 'error' (never started) and 'close' settles it.
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
        [idleTimer, hardTimer, closeTimer].forEach(clearTimeout);
        void chain.then(() => resolve({ ...out, exitCode, signal }));
      };
      proc.stdout?.on('data', (chunk: Buffer) => {
        out.stdoutTail = tail(out.stdoutTail, chunk);
        for (const output of parser.feed(chunk)) {
          out.outputs.push(output);
          if (output.newSessionId) out.newSessionId = output.newSessionId;
          armTimers();
          if (out.outputs.length === 1 && closeAfterFirstMs !== null)
            closeTimer = setTimeout(() => close('task done'), closeAfterFirstMs);
          const failed = (err: unknown) => logger.error({ name, err: String(err) }, 'output handler failed');
          chain = chain.then(() => hooks.onOutput(output).catch(failed));
        }
        if (parser.overflowed && !out.overflowed) {
          out.overflowed = true;
          kill('output over 10 MiB');
        }
      });
      proc.stderr?.on('data', (chunk: Buffer) => {
        out.stderrTail = tail(out.stderrTail, chunk);
        for (const line of chunk.toString('utf8').split('\n'))
          if (line.trim()) logger.debug({ name, line }, 'sandbox stderr');
      });
      proc.on('error', (err) => {
        out.spawnError = err;
        if (proc.pid === undefined) finish(null, null);
      });
      proc.on('close', finish);
      armTimers();
    });
  }

  /** Stops the group's running sandbox (the Stop button); false when none runs. */
  async stopGroup(folder: string): Promise<boolean> {
    const prefix = `nanoclaw-${folder}-`;
    const names = [...this.running].filter(
      (n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)),
    );
    for (const name of names) this.stopped.add(name);
    await Promise.all(names.map((name) => this.deps.runtime.stop(name)));
    return names.length > 0;
  }

  async stopAll(): Promise<void> {
    const names = [...this.running];
    logger.warn({ sandboxes: names }, 'sandboxes still running after the grace period; stopping them');
    const failed = (name: string) => (err: unknown) => logger.error({ name, err }, 'cannot stop sandbox');
    await Promise.all(names.map((name) => this.deps.runtime.stop(name).catch(failed(name))));
  }
}
