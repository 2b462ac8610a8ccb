import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ipcMessageSchema } from '../../src/contract/ipc.js';
import type { AgentInput } from '../../src/contract/ipc.js';
import type { AgentOutput } from '../../src/types.js';
import {
  allUserText,
  hasToolResult,
  isAgentTurn,
  lastUserText,
  newestUserText,
  startMockAnthropic,
  toolNames,
  type MockAnthropic,
  type MockScript,
  type MockTurn,
} from '../fixtures/mock-anthropic.js';

/**
 * The real agent-runner and the real Claude Agent SDK against the scripted model mock: once in
 * the real agent image (docker, no network, read-only root), once directly on this machine with
 * the path overrides (a quicker loop for the runner's own behaviour).
 */

const PROJECT = path.resolve(import.meta.dirname, '../..');
const RUNNER_DIR = path.join(PROJECT, 'container/agent-runner');
const IMAGE = process.env.CONTAINER_IMAGE || 'nanoclaw-agent:latest';
const START = '---NANOCLAW_OUTPUT_START---';
const END = '---NANOCLAW_OUTPUT_END---';
const PLACEHOLDER_KEY = 'sk-ant-nanoclaw-placeholder';
const IS_ROOT = process.getuid?.() === 0;

interface Sandbox {
  root: string;
  groupDir: string;
  globalDir: string;
  ipcDir: string;
  inboxDir: string;
  sessionsDir: string;
  proxyDir: string;
}

function makeSandbox(): Sandbox {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-agent-'));
  const sb: Sandbox = {
    root,
    groupDir: path.join(root, 'group'),
    globalDir: path.join(root, 'global'),
    ipcDir: path.join(root, 'ipc'),
    inboxDir: path.join(root, 'inbox'),
    sessionsDir: path.join(root, 'home/.claude'),
    proxyDir: path.join(root, 'proxy'),
  };
  for (const dir of [sb.groupDir, sb.globalDir, sb.sessionsDir, sb.proxyDir])
    fs.mkdirSync(dir, { recursive: true });
  for (const sub of ['messages', 'tasks']) fs.mkdirSync(path.join(sb.ipcDir, sub), { recursive: true });
  fs.mkdirSync(path.join(sb.inboxDir, 'input'), { recursive: true });
  // The sandbox user is uid 1000; as root here, hand it the writable dirs.
  if (IS_ROOT) execFileSync('chown', ['-R', '1000:1000', sb.groupDir, sb.ipcDir, sb.sessionsDir]);
  return sb;
}

function writeInput(sb: Sandbox, text: string): void {
  const file = path.join(sb.inboxDir, 'input', `${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ type: 'message', text }));
  fs.renameSync(`${file}.tmp`, file);
}

const closeRun = (sb: Sandbox) => fs.writeFileSync(path.join(sb.inboxDir, 'input', '_close'), '');

async function waitFor<T>(what: string, probe: () => T | undefined, ms: number, diag = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${diag()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface AgentRun {
  outputs: AgentOutput[];
  stderr(): string;
  exitCode: Promise<number | null>;
  waitForOutputs(n: number, ms?: number): Promise<AgentOutput[]>;
  startedAt: number;
}

function startRun(mode: 'docker' | 'host', sb: Sandbox, input: AgentInput | string): AgentRun {
  const child =
    mode === 'docker'
      ? spawn('docker', [
          'run',
          '-i',
          '--rm',
          '--network',
          'none',
          '--read-only',
          '--tmpfs',
          '/tmp',
          '--tmpfs',
          '/home/node:uid=1000,gid=1000',
          '-v',
          `${sb.groupDir}:/workspace/group`,
          '-v',
          `${sb.ipcDir}:/workspace/ipc`,
          '-v',
          `${sb.inboxDir}:/workspace/inbox:ro`,
          '-v',
          `${sb.sessionsDir}:/home/node/.claude`,
          '-v',
          `${sb.proxyDir}:/run/nanoclaw:ro`,
          IMAGE,
        ])
      : spawn(process.execPath, [path.join(RUNNER_DIR, 'dist/index.js')], {
          cwd: sb.groupDir,
          env: {
            PATH: process.env.PATH,
            HOME: path.dirname(sb.sessionsDir),
            NANOCLAW_GROUP_DIR: sb.groupDir,
            NANOCLAW_GLOBAL_DIR: sb.globalDir,
            NANOCLAW_IPC_DIR: sb.ipcDir,
            NANOCLAW_INBOX_DIR: sb.inboxDir,
            NANOCLAW_PROXY_DIR: sb.proxyDir,
            NANOCLAW_EXTRA_DIR: path.join(sb.root, 'extra'),
          },
        });
  let stdout = '';
  let stderr = '';
  const outputs: AgentOutput[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    for (let s = stdout.indexOf(START); s !== -1; s = stdout.indexOf(START)) {
      const e = stdout.indexOf(END, s);
      if (e === -1) break;
      outputs.push(JSON.parse(stdout.slice(s + START.length, e).trim()) as AgentOutput);
      stdout = stdout.slice(e + END.length);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(typeof input === 'string' ? input : JSON.stringify(input));
  const exitCode = new Promise<number | null>((resolve) => child.on('exit', resolve));
  running.push(child);
  const diag = () => `stderr:\n${stderr.slice(-3000)}`;
  return {
    outputs,
    stderr: () => stderr,
    exitCode,
    startedAt: Date.now(),
    waitForOutputs: (n, ms = 60_000) =>
      waitFor(`${n} framed output(s)`, () => (outputs.length >= n ? outputs : undefined), ms, diag),
  };
}

const running: ReturnType<typeof spawn>[] = [];
const sandboxes: Sandbox[] = [];
let mock: MockAnthropic | undefined;

function input(sb: Sandbox, prompt: string, extra: Partial<AgentInput> = {}): AgentInput {
  sandboxes.push(sb);
  return {
    prompt,
    groupFolder: 'family',
    chatJid: 'local:family',
    isMain: false,
    assistantName: 'Andy',
    ...extra,
  };
}

/** Side requests (no tools) get "ok"; agent turns go to `agent`. */
const agentScript =
  (agent: (body: unknown) => MockTurn): MockScript =>
  ({ body }) =>
    isAgentTurn(body) ? agent(body) : { text: 'ok' };

function firstAgentRequestMs(m: MockAnthropic, run: AgentRun, seenAt: { ms?: number }) {
  const timer = setInterval(() => {
    if (seenAt.ms === undefined && m.requests.some((r) => isAgentTurn(r.body))) {
      seenAt.ms = Date.now() - run.startedAt;
      clearInterval(timer);
    }
  }, 10);
  return () => clearInterval(timer);
}

afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await mock?.close();
  mock = undefined;
});

afterAll(() => {
  for (const sb of sandboxes) fs.rmSync(sb.root, { recursive: true, force: true });
});

/** Stands in for the host's egress proxy: answers every proxied HTTP request itself. */
async function startEgressStub(socketPath: string) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.end('egress ok');
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  fs.chmodSync(socketPath, 0o666);
  return {
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('agent image (docker, no network)', () => {
  beforeAll(async () => {
    try {
      execFileSync('docker', ['info'], { stdio: 'ignore' });
    } catch {
      throw new Error('docker is not available: install docker.io and start the daemon');
    }
    // Always through the build script: cached layers make this quick, and a stale image never
    // hides a change to the runner. Asynchronously: a build can take minutes, and a blocked test
    // worker misses the test runner's heartbeats.
    const code = await new Promise<number | null>((resolve, reject) => {
      const build = spawn('bash', [path.join(PROJECT, 'container/build.sh')], { stdio: 'inherit' });
      build.on('error', reject);
      build.on('exit', resolve);
    });
    if (code !== 0) throw new Error(`container/build.sh failed (exit ${code})`);
    execFileSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' });
  });

  it('runs a Bash tool call, answers, takes a follow-up in the resumed session, sends via MCP, and closes', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    const egress = await startEgressStub(path.join(sb.proxyDir, 'egress.sock'));
    mock.setScript(
      agentScript((body) => {
        const last = lastUserText(body);
        if (hasToolResult(body))
          return { text: last.includes('Message sent') ? 'sent it' : `bash said ${last.trim()}` };
        if (last.includes('create x.txt'))
          return {
            toolUse: {
              name: 'Bash',
              input: {
                command: 'echo hello > x.txt && id -u && curl -s http://nanoclaw.test/ping',
                description: 'write x.txt',
              },
            },
          };
        if (last.includes('tell me by message'))
          return {
            toolUse: { name: 'mcp__nanoclaw__send_message', input: { text: 'hello from the sandbox' } },
          };
        return { text: 'plain answer' };
      }),
    );
    const run = startRun('docker', sb, input(sb, 'please create x.txt'));
    const seen: { ms?: number } = {};
    const stopTiming = firstAgentRequestMs(mock, run, seen);

    const [first] = await run.waitForOutputs(1);
    stopTiming();
    console.log(`[agent-image] docker: first model request ${seen.ms} ms after docker run`);
    // uid 1000, and plain HTTP from a tool reaches the host's egress socket through HTTP_PROXY.
    expect(first).toMatchObject({ status: 'success', result: 'bash said 1000\negress ok' });
    expect(egress.requests).toEqual(['GET http://nanoclaw.test/ping']);
    expect(first?.newSessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(fs.readFileSync(path.join(sb.groupDir, 'x.txt'), 'utf8')).toBe('hello\n');

    const agentCalls = mock.requests.filter((r) => isAgentTurn(r.body));
    expect(agentCalls[0]?.headers['x-api-key']).toBe(PLACEHOLDER_KEY);
    // alwaysLoad: the MCP tools are in the first request, not deferred behind ToolSearch.
    expect(toolNames(agentCalls[0]?.body)).toEqual(
      expect.arrayContaining(['Bash', 'mcp__nanoclaw__send_message']),
    );

    // Play the host's part of IPC: answer each request in the read-only inbox's responses/.
    const answerRequests = setInterval(() => {
      for (const file of fs
        .readdirSync(path.join(sb.ipcDir, 'messages'))
        .filter((f) => f.endsWith('.json'))) {
        const { requestId } = JSON.parse(fs.readFileSync(path.join(sb.ipcDir, 'messages', file), 'utf8')) as {
          requestId?: string;
        };
        const answer = path.join(sb.inboxDir, 'responses', `${requestId}.json`);
        if (!requestId || fs.existsSync(answer)) continue;
        fs.mkdirSync(path.dirname(answer), { recursive: true });
        fs.writeFileSync(answer, JSON.stringify({ ok: true, result: 'Message sent' }));
      }
    }, 50);
    writeInput(sb, 'now tell me by message');
    const outputs = await run.waitForOutputs(2).finally(() => clearInterval(answerRequests));
    expect(outputs[1]).toMatchObject({
      status: 'success',
      result: 'sent it',
      newSessionId: first?.newSessionId,
    });
    const followUp = mock.requests.filter(
      (r) => isAgentTurn(r.body) && allUserText(r.body).includes('now tell me'),
    );
    expect(allUserText(followUp[0]?.body)).toContain('please create x.txt'); // the session was resumed
    const sent = fs.readdirSync(path.join(sb.ipcDir, 'messages')).filter((f) => f.endsWith('.json'));
    expect(sent).toHaveLength(1);
    const message = ipcMessageSchema.parse(
      JSON.parse(fs.readFileSync(path.join(sb.ipcDir, 'messages', sent[0]!), 'utf8')),
    );
    expect(message).toMatchObject({
      type: 'message',
      chatJid: 'local:family',
      text: 'hello from the sandbox',
    });

    closeRun(sb);
    expect(await run.exitCode).toBe(0);
    expect(run.outputs).toHaveLength(2);
    await egress.close();
  }, 180_000);
});

describe('agent-runner on this machine (path overrides)', () => {
  beforeAll(() => {
    execFileSync('bash', [path.join(PROJECT, 'container/build-runner.sh')], { stdio: 'inherit' });
  });

  it('answers input that was already waiting at start together with a scheduled-task prompt, then honours _close', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    mock.setScript(agentScript((body) => ({ text: `seen: ${allUserText(body).includes('second thing')}` })));
    fs.writeFileSync(path.join(sb.globalDir, 'CLAUDE.md'), 'Shared memory: GLOBAL-MEMORY-MARKER');
    writeInput(sb, 'second thing');
    closeRun(sb);
    const run = startRun('host', sb, input(sb, 'first thing', { isScheduledTask: true }));
    const seen: { ms?: number } = {};
    const stopTiming = firstAgentRequestMs(mock, run, seen);
    expect(await run.exitCode).toBe(0);
    stopTiming();
    console.log(`[agent-image] host: first model request ${seen.ms} ms after spawn`);
    const prompts = mock.requests.filter((r) => isAgentTurn(r.body)).map((r) => allUserText(r.body));
    expect(
      prompts.some(
        (p) => /automatic scheduled task, not a message from the user/.test(p) && p.includes('first thing'),
      ),
    ).toBe(true);
    expect(prompts.some((p) => p.includes('second thing'))).toBe(true);
    // Non-main groups get the global CLAUDE.md appended to the system prompt.
    const system = JSON.stringify(mock.requests.find((r) => isAgentTurn(r.body))?.body.system);
    expect(system).toContain('GLOBAL-MEMORY-MARKER');
    expect(run.outputs.at(-1)).toMatchObject({ status: 'success', result: 'seen: true' });
    // The inbox is the host's: the runner remembers what it read and deletes nothing.
    expect(fs.readdirSync(path.join(sb.inboxDir, 'input'))).toHaveLength(2);
  }, 120_000);

  it('joins a follow-up that arrives mid-turn to the running query and answers it too', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    mock.setScript(
      agentScript((body) => ({
        text: `got: ${newestUserText(body)}`,
        delayMs: 1500,
      })),
    );
    const run = startRun('host', sb, input(sb, 'first question'));
    const m = mock;
    await waitFor('the first agent request', () => m.requests.some((r) => isAgentTurn(r.body)), 30_000);
    writeInput(sb, 'interjection');
    const outputs = await run.waitForOutputs(2);
    expect(outputs.map((o) => o.result)).toEqual(['got: first question', 'got: interjection']);
    expect(outputs[1]?.newSessionId).toBe(outputs[0]?.newSessionId);
    closeRun(sb);
    expect(await run.exitCode).toBe(0);
  }, 120_000);

  it('replaces a session that cannot be resumed with a fresh one and still answers', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    mock.setScript(agentScript((body) => ({ text: `fresh answer to: ${newestUserText(body)}` })));
    const gone = '11111111-2222-4333-8444-555555555555';
    const run = startRun('host', sb, input(sb, 'are you there?', { sessionId: gone }));
    const [out] = await run.waitForOutputs(1);
    expect(out).toMatchObject({ status: 'success', result: 'fresh answer to: are you there?' });
    expect(out?.newSessionId).toBeDefined();
    expect(out?.newSessionId).not.toBe(gone);
    closeRun(sb);
    expect(await run.exitCode).toBe(0);
  }, 120_000);

  it('reports a model API error as one error result and exits 1', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    mock.setScript(
      agentScript(() => ({
        error: { status: 400, type: 'invalid_request_error', message: 'daily budget spent' },
      })),
    );
    const run = startRun('host', sb, input(sb, 'hello'));
    expect(await run.exitCode).toBe(1);
    expect(run.outputs).toHaveLength(1);
    expect(run.outputs[0]).toMatchObject({ status: 'error', result: null });
    expect(run.outputs[0]?.error).toContain('daily budget spent');
    expect(run.outputs[0]?.newSessionId).toBeDefined();
  }, 120_000);

  it('archives the transcript as markdown before compaction', async () => {
    const sb = makeSandbox();
    mock = await startMockAnthropic({ socketPath: path.join(sb.proxyDir, 'api.sock') });
    mock.setScript(agentScript(() => ({ text: 'the capital is Paris' })));
    const run = startRun('host', sb, input(sb, 'What is the capital of France?'));
    await run.waitForOutputs(1);
    writeInput(sb, '/compact');
    await run.waitForOutputs(2);
    closeRun(sb);
    expect(await run.exitCode).toBe(0);
    const dir = path.join(sb.groupDir, 'conversations');
    const files = fs.readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^\d{4}-\d{2}-\d{2}-what-is-the-capital-of-france\.md$/);
    const markdown = fs.readFileSync(path.join(dir, files[0]!), 'utf8');
    expect(markdown).toContain('What is the capital of France?');
    expect(markdown).toContain('**Andy**');
    expect(markdown).toContain('the capital is Paris');
  }, 120_000);

  it('rejects malformed input with an error result and exit code 1', async () => {
    const sb = makeSandbox();
    sandboxes.push(sb);
    const run = startRun('host', sb, JSON.stringify({ prompt: 'hi', chatJid: 'x' }));
    expect(await run.exitCode).toBe(1);
    expect(run.outputs).toHaveLength(1);
    expect(run.outputs[0]).toMatchObject({ status: 'error', result: null });
    expect(run.outputs[0]?.error).toMatch(/groupFolder/);
  }, 30_000);
});
