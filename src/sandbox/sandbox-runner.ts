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
import { GROUP_LABEL, INSTANCE_LABEL, SANDBOX_HOME, sandboxUser } from './runtime.js';
import type { SandboxRuntime, SandboxSpec, SandboxUser } from './runtime.js';

export interface SandboxRunnerDeps {
  config: Config;
  runtime: SandboxRuntime;
  /** Read at every run, so allowlist edits apply without a restart. */
  allowlist: () => MountAllowlist | null;
  prepare?(group: RegisteredGroup, user: SandboxUser): Promise<void>;
  closeGraceMs?: number;
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

const fail = (error: string): AgentOutput => ({ status: 'error', result: null, error });

function finalOutput(o: SandboxRunOutcome, hardTimeoutMs: number): AgentOutput {
  const last = o.outputs.at(-1);
  const session = o.newSessionId !== undefined ? { newSessionId: o.newSessionId } : {};
  const failed = (error: string) => ({ ...fail(error), result: last?.result ?? null, ...session });
  if (o.spawnError) return fail(`Could not start the sandbox: ${o.spawnError.message}`);
  if (o.overflowed) return failed('Agent output exceeded 10 MiB; the sandbox was stopped');
  // A timeout after output is a normal end: the answer already reached the chat.
  if (o.timedOut)
    return last
      ? { status: 'success', result: last.result, ...session }
      : fail(`The agent produced no output within ${hardTimeoutMs} ms and was stopped`);
  if (o.exitCode === 0) return { ...(last ?? { status: 'success', result: null }), ...session };
  // The runner's own error (no credentials, budget spent) picks the failure notice.
  if (last?.status === 'error' && last.error) return { ...last, ...session };
  const stderr = o.stderrTail.trim().split('\n').slice(-10).join('\n').slice(-1000);
  const how = o.signal ? `signal ${o.signal}` : `code ${o.exitCode}`;
  return failed(`Sandbox exited with ${how}${stderr ? `: ${stderr}` : ''}`);
}

export class SandboxRunner implements AgentRunner {
  private readonly running = new Set<string>();
  /** Stopped by the person: the run ends as done, not as a crash to retry. */
  private readonly stopped = new Set<string>();

  constructor(private readonly deps: SandboxRunnerDeps) {}

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    const { config, runtime } = this.deps;
    const { folder, isMain } = group;
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
      const { allowed } = validateAdditionalMounts(extra, this.deps.allowlist(), { isMain, config });
      spec = {
        name,
        image: config.containerImage,
        mounts: buildMountPlan(group, config, allowed),
        env: {
          TZ: config.timezone,
          HOME: SANDBOX_HOME,
          NANOCLAW_MIN_TASK_INTERVAL_MS: `${config.minTaskIntervalMs}`,
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
      proc.stdin?.on('error', () => {}); // the sandbox exited before reading its input
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
    const { mounts, env } = spec;
    const envKeys = Object.keys(env);
    writeRunLog({
      groupsDir: config.groupsDir,
      folder,
      sandboxName: name,
      runtime: runtime.kind,
      startedAt,
      durationMs,
      input,
      mounts,
      envKeys,
      outcome,
      result,
    });
    const log = { group: folder, name, durationMs, status: result.status };
    if (result.status === 'error')
      logger.warn({ ...log, error: result.error, cause: result.failure?.cause }, 'sandbox run failed');
    else logger.info(log, 'sandbox run finished');
    return result;
  }

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
    if (cause === 'runtime-missing')
      return runtime.ensureRunning().then(
        () => false,
        () => true,
      );
  }

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
    let chain = Promise.resolve(); // onOutput is async: the chain keeps delivery in order
    const timers: { idle?: NodeJS.Timeout; hard?: NodeJS.Timeout; close?: NodeJS.Timeout } = {};
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
      clearTimeout(timers.idle);
      clearTimeout(timers.hard);
      timers.idle = setTimeout(() => close('idle'), config.idleTimeoutMs);
      timers.hard = setTimeout(() => {
        out.timedOut = true;
        kill('hard timeout');
      }, hardTimeoutMs);
    };
    const tail = (text: string, chunk: Buffer) => (text + chunk.toString('utf8')).slice(-64 * 1024);

    return new Promise((resolve) => {
      // The first of 'error' (never started) and 'close' settles it.
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
        Object.values(timers).forEach(clearTimeout);
        void chain.then(() => resolve({ ...out, exitCode, signal }));
      };
      proc.stdout?.on('data', (chunk: Buffer) => {
        out.stdoutTail = tail(out.stdoutTail, chunk);
        for (const output of parser.feed(chunk)) {
          out.outputs.push(output);
          out.newSessionId = output.newSessionId ?? out.newSessionId;
          armTimers();
          if (out.outputs.length === 1 && closeAfterFirstMs !== null)
            timers.close = setTimeout(() => close('task done'), closeAfterFirstMs);
          const failed = (err: unknown) => logger.error({ name, err: String(err) }, 'output handler failed');
          chain = chain.then(() => hooks.onOutput(output).catch(failed));
        }
        if (parser.overflowed && !out.overflowed) {
          out.overflowed = true;
          kill('output over 10 MiB');
        }
      });
      proc.stderr?.on('data', (chunk: Buffer) => (out.stderrTail = tail(out.stderrTail, chunk)));
      proc.on('error', (err) => {
        out.spawnError = err;
        if (proc.pid === undefined) finish(null, null);
      });
      proc.on('close', finish);
      armTimers();
    });
  }

  async stopGroup(folder: string): Promise<boolean> {
    const names = [...this.running].filter((n) => new RegExp(`^nanoclaw-${folder}-\\d+$`).test(n));
    names.forEach((name) => this.stopped.add(name));
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
