import type { ChildProcess } from 'node:child_process';
import { isValidFolder, type Config } from '../config.js';
import { logger } from '../logger.js';
import type { AgentInput, AgentOutput, AgentRunHooks, AgentRunner, RegisteredGroup } from '../types.js';
import { clearInput, writeClose } from '../ipc/to-agent.js';
import { validateAdditionalMounts, type MountAllowlist } from './mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS, prepareGroupDirs } from './mount-plan.js';
import { writeRunLog } from './run-log.js';
import {
  GROUP_LABEL,
  INSTANCE_LABEL,
  SANDBOX_HOME,
  sandboxUser,
  type SandboxRuntime,
  type SandboxSpec,
} from './runtime.js';
import { superviseSandbox, type SandboxRunOutcome } from './sandbox-run.js';

export interface ContainerRunnerDeps {
  config: Config;
  runtime: SandboxRuntime;
  /** Read at every run, so edits to the allowlist apply without a restart. */
  allowlist: () => MountAllowlist | null;
  /** Runs before the sandbox starts, e.g. to open the group's proxy sockets. */
  prepare?(group: RegisteredGroup, user: { uid: number; gid: number }): Promise<void>;
  now?: () => number;
  /** Replaces the image's command (tests run small scripts instead of the agent). */
  command?: string[];
  /** The hard timeout is at least IDLE_TIMEOUT plus this, so `_close` gets its chance first. */
  closeGraceMs?: number;
}

const DEFAULT_CLOSE_GRACE_MS = 30_000;

const fail = (error: string): AgentOutput => ({ status: 'error', result: null, error });

function lastLines(text: string, lines = 10, chars = 1000): string {
  return text.trim().split('\n').slice(-lines).join('\n').slice(-chars);
}

/** Turns what happened in the sandbox into the one result the caller gets. */
function finalOutput(outcome: SandboxRunOutcome, hardTimeoutMs: number): AgentOutput {
  const last = outcome.outputs.at(-1);
  const session = outcome.newSessionId !== undefined ? { newSessionId: outcome.newSessionId } : {};
  if (outcome.spawnError) return fail(`Could not start the sandbox: ${outcome.spawnError.message}`);
  if (outcome.overflowed)
    return {
      ...fail('Agent output exceeded 10 MiB; the sandbox was stopped'),
      result: last?.result ?? null,
      ...session,
    };
  if (outcome.timedOut) {
    // Output already reached the chat; a sandbox idling into its timeout has simply finished.
    if (last) return { status: 'success', result: last.result, ...session };
    return fail(`The agent produced no output within ${hardTimeoutMs} ms and was stopped`);
  }
  if (outcome.exitCode !== 0) {
    // The agent-runner reports why it failed before exiting with 1 (no credentials, budget spent):
    // that reason, not the exit code, is what the failure notice must be chosen from.
    if (last?.status === 'error' && last.error) return { ...last, ...session };
    const how = outcome.signal ? `signal ${outcome.signal}` : `code ${outcome.exitCode}`;
    const stderr = lastLines(outcome.stderrTail);
    return {
      ...fail(`Sandbox exited with ${how}${stderr ? `: ${stderr}` : ''}`),
      result: last?.result ?? null,
      ...session,
    };
  }
  if (!last) return { status: 'success', result: null, ...session };
  return { ...last, ...session };
}

/** Runs one agent turn for a group in a fresh sandbox and streams its results back. */
export class ContainerRunner implements AgentRunner {
  private readonly now: () => number;

  constructor(private readonly deps: ContainerRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    const { config, runtime } = this.deps;
    if (!isValidFolder(group.folder)) return fail(`Invalid group folder: ${group.folder}`);
    const startedAt = this.now();
    const name = `nanoclaw-${group.folder}-${startedAt}`;
    const idleTimeoutMs = config.idleTimeoutMs;
    const hardTimeoutMs = Math.max(
      group.containerConfig?.timeoutMs ?? config.containerTimeoutMs,
      idleTimeoutMs + (this.deps.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS),
    );

    let spec: SandboxSpec;
    try {
      const user = sandboxUser(config);
      prepareGroupDirs(group, config, user);
      clearInput(config, group.folder);
      await this.deps.prepare?.(group, user);
      const extras = validateAdditionalMounts(
        group.containerConfig?.additionalMounts ?? [],
        this.deps.allowlist(),
        { isMain: group.isMain, config },
      );
      spec = {
        name,
        image: config.containerImage,
        mounts: buildMountPlan(group, config, extras.allowed),
        env: {
          TZ: config.timezone,
          HOME: SANDBOX_HOME,
          // The MCP tools check a new interval against the host's minimum before writing.
          NANOCLAW_MIN_TASK_INTERVAL_MS: String(config.minTaskIntervalMs),
        },
        workdir: CONTAINER_PATHS.group,
        labels: { [INSTANCE_LABEL]: config.instanceId, [GROUP_LABEL]: group.folder },
        user,
        ...(this.deps.command && { command: this.deps.command }),
      };
    } catch (err) {
      logger.error({ group: group.folder, err: String(err) }, 'sandbox preparation failed');
      return fail(`Could not prepare the sandbox: ${String(err)}`);
    }

    let outcome: SandboxRunOutcome | null = null;
    let proc: ChildProcess | null = null;
    let result = fail('The sandbox did not start');
    try {
      proc = runtime.spawn(spec);
    } catch (err) {
      result = fail(`Could not start the sandbox: ${String(err)}`);
    }
    if (proc) {
      logger.info({ group: group.folder, name, runtime: runtime.kind }, 'sandbox started');
      try {
        hooks.onStarted?.(name);
      } catch (err) {
        logger.error({ name, err: String(err) }, 'onStarted hook failed');
      }
      proc.stdin?.on('error', (err) => logger.debug({ name, err: String(err) }, 'stdin closed early'));
      proc.stdin?.end(`${JSON.stringify(input)}\n`);
      outcome = await superviseSandbox({
        proc,
        name,
        runtime,
        onOutput: hooks.onOutput,
        idleTimeoutMs,
        hardTimeoutMs,
        closeAfterFirstOutputMs: input.isScheduledTask ? config.taskCloseDelayMs : null,
        writeClose: () => writeClose(config, group.folder),
      });
      result = finalOutput(outcome, hardTimeoutMs);
    }

    const durationMs = this.now() - startedAt;
    writeRunLog({
      groupsDir: config.groupsDir,
      folder: group.folder,
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
    const log = { group: group.folder, name, durationMs, status: result.status };
    if (result.status === 'error') logger.warn({ ...log, error: result.error }, 'sandbox run failed');
    else logger.info(log, 'sandbox run finished');
    return result;
  }
}
