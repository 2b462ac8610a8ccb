import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod/v3';
import type { Config } from '../config.js';
import {
  agentOutputSchema,
  isValidFolder,
  OUTPUT_END,
  OUTPUT_START,
  zodProblems,
  type AgentInput,
} from '../contract/ipc.js';
import { failure, type Failure, type FailureCause, type PermanentCause } from '../failure-notice.js';
import { clearInput, writeClose } from '../ipc/to-agent.js';
import { logFailure, logger } from '../logger.js';
import { withSafeDir } from '../safe-fs.js';
import type { AgentOutput, AgentRunHooks, AgentRunner, RegisteredGroup } from '../types.js';
import { validateAdditionalMounts, type MountAllowlist } from './mount-allowlist.js';
import { buildMountPlan, CONTAINER_PATHS, prepareGroupDirs } from './mount-plan.js';
import { GROUP_LABEL, INSTANCE_LABEL, SANDBOX_HOME, sandboxUser } from './runtime.js';
import type { SandboxRuntime, SandboxSpec, SandboxUser } from './runtime.js';

export interface SandboxRunnerDeps {
  config: Config;
  runtime: SandboxRuntime;
  allowlist: () => MountAllowlist | null;
  prepare?(group: RegisteredGroup, user: SandboxUser): Promise<void>;
  closeGraceMs?: number;
  modelFailure?(folder: string, since: number): Failure | undefined;
}

export const MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

const fail = (error: string): AgentOutput => ({ status: 'error', result: null, error });

export class AgentOutputParser {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private bytes = 0;
  overflowed = false;

  feed(chunk: Buffer | string): AgentOutput[] {
    const data = Buffer.from(chunk);
    if (this.overflowed || (this.bytes += data.length) > MAX_OUTPUT_BYTES) {
      this.overflowed = true;
      this.buffer = '';
      return [];
    }
    this.buffer += this.decoder.write(data);
    const outputs: AgentOutput[] = [];
    for (let start; (start = this.buffer.indexOf(OUTPUT_START)) !== -1;) {
      this.buffer = this.buffer.slice(start);
      const end = this.buffer.indexOf(OUTPUT_END, OUTPUT_START.length);
      if (end === -1) return outputs;
      try {
        outputs.push(agentOutputSchema.parse(JSON.parse(this.buffer.slice(OUTPUT_START.length, end))));
      } catch (err) {
        const error = `Malformed output from the agent: ${err instanceof z.ZodError ? zodProblems(err) : String(err)}`;
        logger.warn({ error }, 'bad sandbox output');
        outputs.push(fail(error));
      }
      this.buffer = this.buffer.slice(end + OUTPUT_END.length);
    }
    this.buffer = this.buffer.slice(-(OUTPUT_START.length - 1));
    return outputs;
  }
}

export function writeRunLog(groupsDir: string, folder: string, startedAt: number, text: string): boolean {
  try {
    return withSafeDir(groupsDir, [folder, 'logs'], { create: true, replace: true }, (logs) => {
      const file = `${new Date(startedAt).toISOString().replace(/:/g, '-')}.log`;
      if (!logs.createFile(file, text)) throw new Error(`${file} exists`);
      return true;
    });
  } catch (err) {
    logger.warn({ group: folder, err: String(err) }, 'could not write run log');
    return false;
  }
}

export class SandboxRunner implements AgentRunner {
  /** Name → stopped by the person: the run then ends as done, not as a crash. */
  private readonly running = new Map<string, boolean>();

  constructor(private readonly deps: SandboxRunnerDeps) {}

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    const { config, runtime } = this.deps;
    const { folder, isMain } = group;
    if (!isValidFolder(folder)) return fail(`Invalid group folder: ${folder}`);
    const startedAt = Date.now();
    const name = `nanoclaw-${folder}-${startedAt}`;
    let spec: SandboxSpec;
    try {
      const user = sandboxUser(config);
      prepareGroupDirs(group, config, user);
      // A run that may read a stale follow-up beats no run; the cursor keeps answers unique.
      logFailure('cannot clear stale sandbox input', { group: folder }, () => clearInput(config, folder));
      await this.deps.prepare?.(group, user);
      const extra = group.containerConfig?.additionalMounts ?? [];
      const { allowed } = validateAdditionalMounts(extra, this.deps.allowlist(), { isMain, config });
      spec = {
        name,
        image: config.containerImage,
        mounts: buildMountPlan(group, config, allowed),
        env: { TZ: config.timezone, HOME: SANDBOX_HOME },
        workdir: CONTAINER_PATHS.group,
        labels: { [INSTANCE_LABEL]: config.instanceId, [GROUP_LABEL]: folder },
        user,
      };
    } catch (err) {
      logger.error({ group: folder, err: String(err) }, 'sandbox preparation failed');
      return fail(`Could not prepare the sandbox: ${String(err)}`);
    }

    const hardMs = Math.max(
      group.containerConfig?.timeoutMs ?? config.containerTimeoutMs,
      config.idleTimeoutMs + (this.deps.closeGraceMs ?? 30_000),
    );
    const o: {
      outputs: AgentOutput[];
      stderr: string;
      spoke?: boolean; // stdout seen: the sandbox did start
      timedOut?: boolean;
      overflowed?: boolean;
      spawnError?: Error;
      exitCode?: number | null;
      signal?: NodeJS.Signals | null;
    } = { outputs: [], stderr: '' };
    try {
      const proc = runtime.spawn(spec);
      logger.info({ group: folder, name, runtime: runtime.kind }, 'sandbox started');
      this.running.set(name, false);
      logFailure('onStarted hook failed', { name }, () => hooks.onStarted?.(name));
      proc.stdin?.on('error', () => {}).end(`${JSON.stringify(input)}\n`);
      const parser = new AgentOutputParser();
      let chain = Promise.resolve();
      const timers: Partial<Record<'idle' | 'hard' | 'close', NodeJS.Timeout>> = {};
      const close = (why: string) =>
        logFailure('could not write close sentinel', { name }, () => {
          writeClose(config, folder);
          logger.info({ name, why }, 'asked sandbox to close');
        });
      const kill = (why: string) => {
        logger.warn({ name, why }, 'stopping sandbox');
        void this.stop(name).then(() => proc.kill('SIGKILL')); // a no-op once it has exited
      };
      const arm = () => {
        clearTimeout(timers.idle);
        clearTimeout(timers.hard);
        timers.idle = setTimeout(() => close('idle'), config.idleTimeoutMs);
        timers.hard = setTimeout(() => ((o.timedOut = true), kill('hard timeout')), hardMs);
      };
      arm();
      proc.stdout?.on('data', (chunk: Buffer) => {
        o.spoke = true;
        for (const output of parser.feed(chunk)) {
          o.outputs.push(output);
          arm();
          if (o.outputs.length === 1 && input.isScheduledTask)
            timers.close = setTimeout(() => close('task done'), config.taskCloseDelayMs);
          const failed = (err: unknown) => logger.error({ name, err: String(err) }, 'output handler failed');
          chain = chain.then(() => hooks.onOutput(output).catch(failed));
        }
        if (parser.overflowed && !o.overflowed) kill('output over 10 MiB');
        o.overflowed = parser.overflowed;
      });
      proc.stderr?.on('data', (chunk: Buffer) => (o.stderr = (o.stderr + chunk.toString()).slice(-65536)));
      proc.on('error', (err) => (o.spawnError = err)); // 'close' follows, also when it never started
      await new Promise<void>((resolve) =>
        proc.on('close', (exitCode, signal) => {
          Object.values(timers).forEach(clearTimeout);
          Object.assign(o, { exitCode, signal });
          void chain.then(resolve);
        }),
      );
    } catch (err) {
      o.spawnError = err as Error;
    }

    const last = o.outputs.at(-1);
    const session = { newSessionId: o.outputs.findLast((x) => x.newSessionId)?.newSessionId };
    const failed = (error: string) => ({ ...fail(error), result: last?.result ?? null, ...session });
    const stderr = o.stderr.trim().split('\n').slice(-10).join('\n').slice(-1000);
    const result = ((): AgentOutput => {
      if (this.running.get(name)) return { status: 'success', result: null };
      if (o.spawnError) return failed(`Could not start the sandbox: ${o.spawnError.message}`);
      if (o.overflowed) return failed('Agent output over 10 MiB; sandbox stopped');
      // After output, a timeout is a normal end.
      if (o.timedOut)
        return last
          ? { status: 'success', result: last.result, ...session }
          : failed(`Agent gave no output within ${hardMs} ms`);
      if (o.exitCode === 0) return { ...(last ?? { status: 'success', result: null }), ...session };
      // The runner's own error picks the failure notice.
      if (last?.status === 'error' && last.error) return { ...last, ...session };
      return failed(`Sandbox exited with ${o.signal ?? `code ${o.exitCode}`}${stderr && `: ${stderr}`}`);
    })();
    this.running.delete(name);
    const cause = async (): Promise<FailureCause> => {
      if (o.timedOut) return 'timeout';
      if (await this.holds('runtime-missing')) return o.spoke ? 'runtime-restarting' : 'runtime-missing';
      if (await this.holds('image-missing')) return 'image-missing';
      return o.spawnError ? 'unknown' : 'sandbox-crash';
    };
    if (result.status === 'error')
      result.failure ??= this.deps.modelFailure?.(folder, startedAt) ?? failure(await cause());
    const durationMs = Date.now() - startedAt;
    const mounts = spec.mounts.map(
      (m) => `  ${m.mask ? '(hidden)' : m.hostPath} -> ${m.containerPath} (${m.readonly ? 'ro' : 'rw'})`,
    );
    // The prompt is never logged, only its length.
    const { prompt, ...fields } = input;
    const text = `Sandbox: ${name}
Input: ${JSON.stringify({ ...fields, promptLength: prompt.length })}
Duration: ${durationMs} ms
Exit code: ${o.exitCode ?? 'none'} ${o.signal ?? ''}
Status: ${result.status}${result.error ? ` — ${result.error}` : ''}
Mounts:
${mounts.join('\n')}

=== stderr (tail) ===
${o.stderr}
`;
    writeRunLog(config.groupsDir, folder, startedAt, text);
    const bad = result.status === 'error';
    const log = { group: folder, name, durationMs, error: result.error, cause: result.failure?.cause };
    logger[bad ? 'warn' : 'info'](log, bad ? 'sandbox run failed' : 'sandbox run finished');
    return result;
  }

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

  private stop(name: string) {
    return this.deps.runtime
      .stop(name)
      .catch((err) => logger.error({ name, err: String(err) }, 'cannot stop'));
  }

  async stopGroup(folder: string): Promise<boolean> {
    const names = [...this.running.keys()].filter((n) => new RegExp(`^nanoclaw-${folder}-\\d+$`).test(n));
    names.forEach((name) => this.running.set(name, true));
    await Promise.all(names.map((name) => this.stop(name)));
    return names.length > 0;
  }

  async stopAll(): Promise<void> {
    const names = [...this.running.keys()];
    logger.warn({ sandboxes: names }, 'sandboxes still running after the grace period; stopping them');
    await Promise.all(names.map((name) => this.stop(name)));
  }
}
