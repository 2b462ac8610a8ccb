import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ipcTaskSchema } from '../../src/ipc/schemas.js';

/**
 * The compiled nanoclaw MCP server (container/agent-runner/dist/mcp-server.js), driven over stdio
 * the way Claude Code drives it, writing into a real IPC directory.
 */

const PROJECT = path.resolve(import.meta.dirname, '../..');
const RUNNER_DIR = path.join(PROJECT, 'container/agent-runner');

const running: ReturnType<typeof spawn>[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Speaks newline-delimited JSON-RPC to the compiled MCP server, as Claude Code does. */
async function startMcpServer(env: Record<string, string>) {
  const child = spawn(process.execPath, [path.join(RUNNER_DIR, 'dist/mcp-server.js')], {
    env: { PATH: process.env.PATH, ...env },
  });
  running.push(child);
  const pending = new Map<number, (msg: { result?: unknown; error?: unknown }) => void>();
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
      const msg = JSON.parse(buffer.slice(0, nl)) as { id?: number; result?: unknown; error?: unknown };
      buffer = buffer.slice(nl + 1);
      if (msg.id !== undefined) pending.get(msg.id)?.(msg);
    }
  });
  let nextId = 1;
  const request = (method: string, params: object = {}) =>
    new Promise<{ result?: unknown; error?: unknown }>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  await request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'test', version: '1' },
  });
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  type ToolReply = { content: Array<{ text: string }>; isError?: boolean };
  return {
    listTools: async () =>
      ((await request('tools/list')).result as { tools: Array<{ name: string }> }).tools.map((t) => t.name),
    call: async (name: string, args: object) => {
      const reply = (await request('tools/call', { name, arguments: args })).result as ToolReply;
      return { text: reply.content.map((c) => c.text).join('\n'), isError: reply.isError === true };
    },
  };
}

describe('nanoclaw MCP server (stdio)', () => {
  const readDir = (dir: string) =>
    (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>);

  function ipcFor(isMain: boolean) {
    const ipcDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-mcp-'));
    dirs.push(ipcDir);
    fs.writeFileSync(
      path.join(ipcDir, 'current_tasks.json'),
      JSON.stringify([
        {
          id: 'task-own',
          groupFolder: 'family',
          chatJid: 'local:family',
          prompt: 'water plants',
          scheduleType: 'cron',
          scheduleValue: '0 9 * * *',
          status: 'active',
          nextRun: null,
        },
        {
          id: 'task-other',
          groupFolder: 'work',
          chatJid: 'local:work',
          prompt: 'standup',
          scheduleType: 'interval',
          scheduleValue: '60000',
          status: 'paused',
          nextRun: null,
        },
      ]),
    );
    const env = {
      NANOCLAW_CHAT_JID: isMain ? 'local:main' : 'local:family',
      NANOCLAW_GROUP_FOLDER: isMain ? 'main' : 'family',
      NANOCLAW_IS_MAIN: isMain ? '1' : '0',
      NANOCLAW_IPC_DIR: ipcDir,
      NANOCLAW_INBOX_DIR: ipcDir,
    };
    return { env, tasks: () => readDir(path.join(ipcDir, 'tasks')) };
  }

  beforeAll(() => {
    execFileSync('bash', [path.join(PROJECT, 'container/build-runner.sh')], { stdio: 'inherit' });
  });

  it('validates schedules before writing and writes task files the host schema accepts', async () => {
    const { env, tasks } = ipcFor(false);
    const mcp = await startMcpServer(env);
    const tools = await mcp.listTools();
    expect(tools).toEqual(
      expect.arrayContaining([
        'send_message',
        'schedule_task',
        'list_tasks',
        'pause_task',
        'resume_task',
        'cancel_task',
        'update_task',
      ]),
    );
    expect(tools).not.toContain('register_group');

    const bad = [
      ['cron', 'every day at nine'],
      ['interval', '0'],
      ['interval', '5m'],
      ['once', '2026-11-23T15:30:00Z'],
      ['once', '2026-11-23T15:30:00+02:00'],
      ['once', 'tomorrow'],
      ['once', '2026-02-30T10:00:00'],
    ];
    for (const [type, value] of bad) {
      const reply = await mcp.call('schedule_task', {
        prompt: 'p',
        schedule_type: type,
        schedule_value: value,
      });
      expect(reply.isError, `${type} ${value}`).toBe(true);
      expect(reply.text).toContain(value);
    }
    expect(tasks()).toEqual([]);

    const ok = await mcp.call('schedule_task', {
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    expect(ok.isError).toBe(false);
    const taskId = /task-\d+-[0-9a-f]+/.exec(ok.text)?.[0];
    expect(taskId).toBeDefined();
    await mcp.call('schedule_task', {
      prompt: 'daily digest',
      schedule_type: 'cron',
      schedule_value: '0 9 * * 1-5',
    });
    await mcp.call('pause_task', { task_id: 'task-own' });
    await mcp.call('update_task', { task_id: 'task-own', schedule_value: '30 8 * * *' });
    const written = tasks();
    expect(written).toHaveLength(4);
    for (const file of written)
      expect(ipcTaskSchema.safeParse(file).success, JSON.stringify(file)).toBe(true);
    expect(written).toContainEqual({
      type: 'schedule_task',
      taskId,
      prompt: 'check the weather',
      schedule_type: 'once',
      schedule_value: '2036-11-23T15:30:00',
      context_mode: 'isolated',
    });
    expect(written).toContainEqual({ type: 'pause_task', taskId: 'task-own' });
    expect(written).toContainEqual({ type: 'update_task', taskId: 'task-own', schedule_value: '30 8 * * *' });

    // update_task checks a new value against the task's known schedule type.
    expect((await mcp.call('update_task', { task_id: 'task-own', schedule_value: 'not cron' })).isError).toBe(
      true,
    );
  }, 30_000);

  it('keeps a non-main group to its own chat and tasks', async () => {
    const { env, tasks } = ipcFor(false);
    const mcp = await startMcpServer(env);
    const listed = await mcp.call('list_tasks', {});
    expect(listed.text).toContain('task-own');
    expect(listed.text).not.toContain('task-other');
    expect((await mcp.call('cancel_task', { task_id: 'task-other' })).isError).toBe(true);
    const foreign = await mcp.call('schedule_task', {
      prompt: 'p',
      schedule_type: 'interval',
      schedule_value: '60000',
      target_group_jid: 'local:work',
    });
    expect(foreign.isError).toBe(true);
    expect(
      (await mcp.call('register_group', { jid: 'x', name: 'x', folder: 'x', trigger: '@Andy' })).isError,
    ).toBe(true);
    expect(tasks()).toEqual([]);
  }, 30_000);

  it('lets main register groups with safe folder names and see every task', async () => {
    const { env, tasks } = ipcFor(true);
    const mcp = await startMcpServer(env);
    expect(await mcp.listTools()).toContain('register_group');
    for (const folder of ['global', '../etc', '-x', 'a b'])
      expect(
        (await mcp.call('register_group', { jid: 'j@g.us', name: 'N', folder, trigger: '@Andy' })).isError,
        folder,
      ).toBe(true);
    const ok = await mcp.call('register_group', {
      jid: '123@g.us',
      name: 'Family',
      folder: 'family',
      trigger: '@Andy',
      requires_trigger: false,
    });
    expect(ok.isError).toBe(false);
    expect(tasks()).toEqual([
      {
        type: 'register_group',
        jid: '123@g.us',
        name: 'Family',
        folder: 'family',
        trigger: '@Andy',
        requires_trigger: false,
      },
    ]);
    const listed = await mcp.call('list_tasks', {});
    expect(listed.text).toContain('task-own');
    expect(listed.text).toContain('task-other');
  }, 30_000);
});
