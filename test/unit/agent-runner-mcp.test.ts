import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nanoclawSdkServer } from '../../container/agent-runner/src/nanoclaw-tools.js';
import { ipcMessageSchema } from '../../src/contract/ipc.js';

/**
 * The nanoclaw tools as the agent-runner serves them in-process (the SDK's createSdkMcpServer),
 * spoken to in MCP's JSON-RPC the way Claude Code speaks to them through the SDK.
 */

interface JsonRpcReply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

type Server = ReturnType<typeof nanoclawSdkServer>['instance'];
type Transport = Parameters<Server['connect']>[0];

async function connect(server: ReturnType<typeof nanoclawSdkServer>) {
  const pending = new Map<number, (reply: JsonRpcReply) => void>();
  const transport = {
    start: async () => undefined,
    close: async () => undefined,
    send: async (message: JsonRpcReply) => {
      if (message.id !== undefined) pending.get(message.id)?.(message);
    },
  } as unknown as Transport & { onmessage?: (message: unknown) => void };
  await server.instance.connect(transport);
  let nextId = 1;
  const request = (method: string, params: object = {}) =>
    new Promise<JsonRpcReply>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      transport.onmessage?.({ jsonrpc: '2.0', id, method, params });
    });
  await request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'test', version: '1' },
  });
  transport.onmessage?.({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return request;
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function ipcDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-mcp-'));
  dirs.push(dir);
  return dir;
}

describe('nanoclaw tools in-process', () => {
  it('offers every tool for loading up front, and main alone may register groups', async () => {
    const ctx = {
      chatJid: 'local:family',
      groupFolder: 'family',
      isMain: false,
      ipcDir: ipcDir(),
      inboxDir: ipcDir(),
    };
    const request = await connect(nanoclawSdkServer(ctx));
    const listed = (await request('tools/list')).result as {
      tools: Array<{ name: string; _meta?: Record<string, unknown> }>;
    };
    expect(listed.tools.map((t) => t.name).sort()).toEqual([
      'cancel_task',
      'list_tasks',
      'pause_task',
      'resume_task',
      'schedule_task',
      'send_message',
      'update_task',
    ]);
    // Not deferred behind ToolSearch: the agent sees them in its first request.
    for (const tool of listed.tools) expect(tool._meta?.['anthropic/alwaysLoad']).toBe(true);

    const main = await connect(
      nanoclawSdkServer({ ...ctx, chatJid: 'local:main', groupFolder: 'main', isMain: true }),
    );
    const mainTools = ((await main('tools/list')).result as { tools: Array<{ name: string }> }).tools;
    expect(mainTools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['register_group', 'refresh_groups']),
    );
  });

  it('writes send_message into the IPC dir in the shape the host accepts, and refuses bad arguments', async () => {
    const dir = ipcDir();
    const request = await connect(
      nanoclawSdkServer({
        chatJid: 'local:family',
        groupFolder: 'family',
        isMain: false,
        ipcDir: dir,
        inboxDir: dir,
      }),
    );
    const sent = await request('tools/call', {
      name: 'send_message',
      arguments: { text: 'hello', sender: 'Scout' },
    });
    expect(sent.result).toMatchObject({ content: [{ type: 'text', text: 'Message sent.' }] });
    const files = fs.readdirSync(path.join(dir, 'messages'));
    expect(files).toHaveLength(1);
    const written = JSON.parse(fs.readFileSync(path.join(dir, 'messages', files[0]!), 'utf8')) as unknown;
    expect(ipcMessageSchema.parse(written)).toEqual({
      type: 'message',
      chatJid: 'local:family',
      text: 'hello',
      sender: 'Scout',
    });

    const empty = await request('tools/call', { name: 'send_message', arguments: { text: '' } });
    expect(empty.result?.isError ?? empty.error !== undefined).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'messages'))).toHaveLength(1);
  });
});
