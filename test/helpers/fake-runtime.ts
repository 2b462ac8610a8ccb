import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { SandboxRuntime, SandboxSpec } from '../../src/sandbox/runtime.js';
import type { AgentOutput, AgentRunHooks, AgentRunner, RegisteredGroup } from '../../src/types.js';
import { OUTPUT_END as END, OUTPUT_START as START, type AgentInput } from '../../src/contract/ipc.js';

export interface FakeHooks {
  /** Writes one framed result to the sandbox's stdout, as the agent-runner does. */
  onOutput(output: AgentOutput): Promise<void>;
}

export type Behaviour = (
  input: AgentInput,
  hooks: FakeHooks,
  spec: SandboxSpec,
) => Promise<AgentOutput> | AgentOutput;

/**
 * A sandbox runtime whose "sandbox" is an in-process function: it reads the input from stdin and
 * speaks the stdout protocol, so the host runs it through the real sandbox runner, mounts, proxies
 * and run log, without docker or bwrap. For tests of the host core and host-only benchmarks.
 */
export class FakeRuntime implements SandboxRuntime {
  readonly kind = 'docker' as const;
  readonly inputs: AgentInput[] = [];
  readonly started: SandboxSpec[] = [];
  private readonly running = new Map<string, FakeProcess>();

  constructor(
    public behaviour: Behaviour = async (input, hooks) => reply(hooks, `echo ${input.prompt.length}`),
  ) {}

  async ensureRunning(): Promise<void> {}
  async imageExists(): Promise<boolean> {
    return true;
  }
  async cleanupOrphans(): Promise<string[]> {
    return [];
  }

  spawn(spec: SandboxSpec): ChildProcess {
    const proc = new FakeProcess();
    this.started.push(spec);
    this.running.set(spec.name, proc);
    let stdin = '';
    proc.stdin.on('data', (chunk: Buffer) => (stdin += chunk.toString()));
    proc.stdin.on('end', () => {
      const input = JSON.parse(stdin) as AgentInput;
      this.inputs.push(input);
      const hooks: FakeHooks = {
        onOutput: async (output) => {
          if (!proc.ended) proc.stdout.write(`${START}\n${JSON.stringify(output)}\n${END}\n`);
        },
      };
      Promise.resolve()
        .then(() => this.behaviour(input, hooks, spec))
        .then(
          async (final) => {
            if (final.status === 'error') await hooks.onOutput(final);
            proc.finish(final.status === 'error' ? 1 : 0, null);
          },
          (err: unknown) => {
            proc.stderr.write(`${String(err)}\n`);
            proc.finish(1, null);
          },
        )
        .finally(() => this.running.delete(spec.name));
    });
    return proc as unknown as ChildProcess;
  }

  async stop(name: string): Promise<void> {
    this.running.get(name)?.finish(null, 'SIGTERM');
    this.running.delete(name);
  }
}

class FakeProcess extends EventEmitter {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly pid = 4242;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  ended = false;

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.finish(null, signal);
    return true;
  }

  finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return;
    this.ended = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.stdout.end();
    this.stderr.end();
    setImmediate(() => {
      this.emit('exit', code, signal);
      this.emit('close', code, signal);
    });
  }
}

export async function reply(
  hooks: FakeHooks,
  text: string,
  newSessionId = 'session-1',
): Promise<AgentOutput> {
  const output: AgentOutput = { status: 'success', result: text, newSessionId };
  await hooks.onOutput(output);
  return output;
}

/** An in-process stand-in for the whole sandbox runner, for tests of the message loop alone. */
export class FakeRunner implements AgentRunner {
  readonly inputs: AgentInput[] = [];
  constructor(
    public behaviour: (
      input: AgentInput,
      hooks: AgentRunHooks,
      group: RegisteredGroup,
    ) => Promise<AgentOutput> = async (input, hooks) => reply(hooks, `echo ${input.prompt.length}`),
  ) {}

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    this.inputs.push(input);
    return this.behaviour(input, hooks, group);
  }
}
