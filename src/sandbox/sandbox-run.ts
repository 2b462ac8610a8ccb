import type { ChildProcess } from 'node:child_process';
import { logger } from '../logger.js';
import type { AgentOutput } from '../types.js';
import { AgentOutputParser } from './output-parser.js';
import type { SandboxRuntime } from './runtime.js';

const TAIL_BYTES = 64 * 1024;

export interface SandboxRunOptions {
  proc: ChildProcess;
  name: string;
  runtime: SandboxRuntime;
  onOutput: (output: AgentOutput) => Promise<void>;
  /** Quiet this long → ask the agent to finish (`_close`). */
  idleTimeoutMs: number;
  /** Quiet this long → stop, then kill. */
  hardTimeoutMs: number;
  /** Scheduled tasks are asked to finish this long after their first result; null = never. */
  closeAfterFirstOutputMs: number | null;
  writeClose: () => void;
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
  firstOutputAt?: number;
}

/** Keeps the last `max` characters of a stream. */
class Tail {
  private text = '';
  constructor(private readonly max = TAIL_BYTES) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.slice(-this.max);
  }
}

/**
 * Supervises one running sandbox: parses its stdout, hands results on strictly in order, owns the
 * idle / hard-timeout / task-close timers, and stops the sandbox when a limit is hit.
 */
export function superviseSandbox(options: SandboxRunOptions): Promise<SandboxRunOutcome> {
  const { proc, name, runtime } = options;
  const parser = new AgentOutputParser();
  const stderr = new Tail();
  const stdout = new Tail();
  const outputs: AgentOutput[] = [];
  let newSessionId: string | undefined;
  let firstOutputAt: number | undefined;
  let timedOut = false;
  let overflowed = false;
  let spawnError: Error | undefined;
  // stdout 'data' fires synchronously while onOutput is async: the chain keeps delivery in order.
  let chain: Promise<void> = Promise.resolve();
  let idleTimer: NodeJS.Timeout | undefined;
  let hardTimer: NodeJS.Timeout | undefined;
  let closeTimer: NodeJS.Timeout | undefined;
  let killing: Promise<void> | undefined;

  const closeSandbox = (why: string) => {
    try {
      options.writeClose();
      logger.info({ name, why }, 'asked sandbox to close');
    } catch (err) {
      logger.warn({ name, err: String(err) }, 'could not write close sentinel');
    }
  };
  const kill = (why: string) => {
    killing ??= (async () => {
      logger.warn({ name, why }, 'stopping sandbox');
      try {
        await runtime.stop(name);
      } catch (err) {
        logger.warn({ name, err: String(err) }, 'runtime stop failed');
      }
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    })();
  };
  const armTimers = () => {
    clearTimeout(idleTimer);
    clearTimeout(hardTimer);
    idleTimer = setTimeout(() => closeSandbox('idle'), options.idleTimeoutMs);
    hardTimer = setTimeout(() => {
      timedOut = true;
      kill('hard timeout');
    }, options.hardTimeoutMs);
  };

  const onResult = (output: AgentOutput) => {
    outputs.push(output);
    if (output.newSessionId) newSessionId = output.newSessionId;
    armTimers();
    if (firstOutputAt === undefined) {
      firstOutputAt = Date.now();
      const delay = options.closeAfterFirstOutputMs;
      if (delay !== null) closeTimer = setTimeout(() => closeSandbox('task done'), delay);
    }
    chain = chain.then(() =>
      options.onOutput(output).catch((err: unknown) => {
        logger.error({ name, err: String(err) }, 'output handler failed');
      }),
    );
  };

  return new Promise((resolve) => {
    let settled = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(idleTimer);
      clearTimeout(hardTimer);
      clearTimeout(closeTimer);
      void chain.then(() =>
        resolve({
          outputs,
          newSessionId,
          exitCode,
          signal,
          timedOut,
          overflowed,
          spawnError,
          stderrTail: stderr.toString(),
          stdoutTail: stdout.toString(),
          firstOutputAt,
        }),
      );
    };

    proc.stdout?.on('data', (chunk: Buffer) => {
      stdout.push(chunk.toString('utf8'));
      for (const output of parser.feed(chunk)) onResult(output);
      if (parser.overflowed && !overflowed) {
        overflowed = true;
        kill('output over 10 MiB');
      }
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      stderr.push(text);
      for (const line of text.split('\n')) if (line.trim()) logger.debug({ name, line }, 'sandbox stderr');
    });
    proc.on('error', (err) => {
      spawnError = err;
      if (proc.pid === undefined) finish(null, null);
    });
    proc.on('close', (code, signal) => finish(code, signal));
    armTimers();
  });
}
