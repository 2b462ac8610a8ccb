import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nanoclawSdkServer } from '../../container/agent-runner/src/nanoclaw-tools.js';
import { ipcMessageSchema, requestIdSchema } from '../../src/contract/ipc.js';
import { handleMessageIpc } from '../../src/ipc/message-handler.js';
import { IpcWatcher } from '../../src/ipc/watcher.js';
import { testGroup } from './sandbox-helpers.js';

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
  vi.unstubAllEnvs();
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
      'send_file',
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

  it('sends through the host and returns its answer: done, or a tool error naming why', async () => {
    const root = ipcDir();
    const family = testGroup('family', { jid: 'local:family' });
    const sent: string[] = [];
    // The real watcher and message handler; the outbound side refuses past a cap of one.
    const watcher = new IpcWatcher({
      ipcDir: root,
      pollMs: 60_000,
      groups: () => [family],
      handle: (_kind, payload, source) =>
        handleMessageIpc(payload, source, {
          groupByJid: () => family,
          send: (_jid, text) =>
            sent.length >= 1
              ? { ok: false, reason: 'per-run cap of 1 message reached' }
              : (sent.push(text), { ok: true }),
          files: { groupsDir: root, filesDir: root },
        }),
    });
    watcher.start();
    try {
      const request = await connect(
        nanoclawSdkServer({
          chatJid: family.jid,
          groupFolder: 'family',
          isMain: false,
          ipcDir: path.join(root, 'family', 'from-agent'),
          inboxDir: path.join(root, 'family', 'to-agent'),
        }),
      );
      const first = await request('tools/call', {
        name: 'send_message',
        arguments: { text: 'hello', sender: 'Scout' },
      });
      expect(first.result).toMatchObject({ content: [{ type: 'text', text: 'Message sent.' }] });
      expect(first.result?.isError).toBeFalsy();
      expect(sent).toEqual(['hello']);

      const second = await request('tools/call', { name: 'send_message', arguments: { text: 'again' } });
      expect(second.result).toMatchObject({
        isError: true,
        content: [
          { type: 'text', text: 'The host refused: message not sent: per-run cap of 1 message reached' },
        ],
      });
      // Answered and quarantined; the runner left the answers where the host put them.
      expect(fs.readdirSync(path.join(root, 'errors')).filter((f) => f.endsWith('.reason.txt'))).toHaveLength(
        1,
      );
      expect(fs.readdirSync(path.join(root, 'family', 'to-agent', 'responses'))).toHaveLength(2);

      const empty = await request('tools/call', { name: 'send_message', arguments: { text: '' } });
      expect(empty.result?.isError ?? empty.error !== undefined).toBe(true);
      expect(fs.readdirSync(path.join(root, 'family', 'to-agent', 'responses'))).toHaveLength(2);
    } finally {
      watcher.stop();
    }
  });

  it('writes send_message in the shape the host accepts, and says so when the host does not answer in time', async () => {
    vi.stubEnv('NANOCLAW_RESPONSE_WAIT_MS', '300');
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
    const started = Date.now();
    const sent = await request('tools/call', {
      name: 'send_message',
      arguments: { text: 'hello', sender: 'Scout' },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(sent.result).toMatchObject({
      content: [{ type: 'text', text: 'Submitted (message), but the host has not confirmed it yet.' }],
    });
    expect(sent.result?.isError).toBeFalsy();
    const files = fs.readdirSync(path.join(dir, 'messages'));
    expect(files).toHaveLength(1);
    const written = JSON.parse(fs.readFileSync(path.join(dir, 'messages', files[0]!), 'utf8')) as {
      requestId: string;
    };
    expect(files[0]).toMatch(new RegExp(`^\\d+-${written.requestId}\\.json$`));
    expect(requestIdSchema.parse(written.requestId)).toBeTruthy();
    expect(ipcMessageSchema.parse(written)).toEqual({
      type: 'message',
      chatJid: 'local:family',
      text: 'hello',
      sender: 'Scout',
    });
  });
});
