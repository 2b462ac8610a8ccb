import type {
  AgentInput,
  AgentOutput,
  AgentRunHooks,
  AgentRunner,
  RegisteredGroup,
} from '../../src/types.js';

export type Behaviour = (
  input: AgentInput,
  hooks: AgentRunHooks,
  group: RegisteredGroup,
) => Promise<AgentOutput> | AgentOutput;

/** An in-process stand-in for the sandboxed runner, for tests of the host core only. */
export class FakeRunner implements AgentRunner {
  readonly inputs: AgentInput[] = [];
  constructor(
    public behaviour: Behaviour = async (input, hooks) => reply(hooks, `echo ${input.prompt.length}`),
  ) {}

  async run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput> {
    this.inputs.push(input);
    return this.behaviour(input, hooks, group);
  }
}

export async function reply(
  hooks: AgentRunHooks,
  text: string,
  newSessionId = 'session-1',
): Promise<AgentOutput> {
  const output: AgentOutput = { status: 'success', result: text, newSessionId };
  await hooks.onOutput(output);
  return output;
}
