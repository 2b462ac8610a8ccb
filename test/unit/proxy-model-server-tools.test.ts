import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Secrets } from '../../src/env-file.js';
import { createModelProxyServer } from '../../src/proxy/model-proxy.js';

interface SeenRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const WEB_SEARCH = { type: 'web_search_20250305', name: 'web_search', max_uses: 8 };
const WEB_FETCH = { type: 'web_fetch_20250910', name: 'web_fetch' };
const CODE_EXECUTION = { type: 'code_execution_20250825', name: 'code_execution' };
/** What the Claude Agent SDK sends: its own tools as plain definitions, plus client-run typed ones. */
const CLIENT_TOOLS = [
  { name: 'Read', description: 'Read a file', input_schema: { type: 'object', properties: {} } },
  { type: 'custom', name: 'mcp__nanoclaw__send', input_schema: { type: 'object' } },
  { type: 'bash_20250124', name: 'bash' },
  { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool' },
];
const SDK_BETAS =
  'claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14';
const FEATURE_BETAS =
  'mcp-client-2025-04-04,code-execution-2025-05-22,web-fetch-2025-09-10,files-api-2025-04-14';

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

describe('model proxy: server tools under the network policy', () => {
  let dir: string;
  let configDir: string;
  let socketPath: string;
  let upstream: http.Server;
  let proxy: http.Server;
  let seen: SeenRequest[];
  let secrets: Secrets;
  let usage: Array<[string, number, number]>;
  let answer: (res: http.ServerResponse) => void;

  const policyFile = () => path.join(configDir, 'network-policy.json');
  const writePolicy = (policy: unknown) => fs.writeFileSync(policyFile(), JSON.stringify(policy));

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-tools-'));
    configDir = path.join(dir, 'config');
    fs.mkdirSync(configDir);
    socketPath = path.join(dir, 'api.sock');
    seen = [];
    usage = [];
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"usage":{"input_tokens":3,"output_tokens":1}}');
    };
    upstream = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ url: req.url!, headers: req.headers, body });
        answer(res);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    secrets = { ANTHROPIC_API_KEY: 'sk-real-key', ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}` };
    proxy = createModelProxyServer('family', {
      readSecrets: () => secrets,
      recordUsage: (folder, input, output) => usage.push([folder, input, output]),
      tokensUsedToday: () => 0,
      dailyTokenBudget: () => undefined,
      configDir,
    });
    await new Promise<void>((resolve) => proxy.listen(socketPath, resolve));
  });

  afterEach(async () => {
    proxy.closeAllConnections();
    upstream.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await new Promise((resolve) => upstream.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function send(
    body: unknown,
    opts: { betas?: string; path?: string; raw?: string | Buffer } = {},
  ): Promise<{
    status: number;
    body: string;
    json: () => { type: string; error: { type: string; message: string } };
  }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath,
          method: 'POST',
          path: opts.path ?? '/v1/messages?beta=true',
          headers: {
            'content-type': 'application/json',
            'anthropic-version': '2023-06-01',
            'x-api-key': 'placeholder',
            ...(opts.betas ? { 'anthropic-beta': opts.betas } : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () =>
            resolve({ status: res.statusCode!, body: text, json: () => JSON.parse(text) as never }),
          );
        },
      );
      req.on('error', reject);
      req.end(opts.raw ?? JSON.stringify(body));
    });
  }

  const request = (tools: unknown[], extra: Record<string, unknown> = {}) => ({
    model: 'claude-test',
    max_tokens: 100,
    messages: [{ role: 'user', content: 'hi' }],
    tools,
    ...extra,
  });

  const forwardedTools = () => (JSON.parse(seen[0]!.body) as { tools: Array<Record<string, unknown>> }).tools;

  describe('a group with no network', () => {
    beforeEach(() => writePolicy({ groups: { family: { noNetwork: true } } }));

    it('refuses web_search and says why, without calling the upstream', async () => {
      const res = await send(request([...CLIENT_TOOLS, WEB_SEARCH]));
      expect(res.status).toBe(403);
      expect(res.json()).toEqual({
        type: 'error',
        error: {
          type: 'permission_error',
          message: `the server tool web_search_20250305 is not allowed for this group: the network policy gives this group no network.`,
        },
      });
      expect(seen).toEqual([]);
    });

    it.each([
      ['web_fetch', [WEB_FETCH], {}],
      ['code_execution', [CODE_EXECUTION], {}],
      ['the server tool', [{ type: 'some_new_tool_20270101', name: 'x' }], {}],
      [
        'the MCP connector',
        [],
        {
          mcp_servers: [{ type: 'url', url: 'https://mcp.example.com/sse', name: 'x' }],
        },
      ],
      ['a code execution container', [], { container: 'container_011' }],
    ])('refuses %s', async (what, tools, extra) => {
      const res = await send(request(tools, extra));
      expect(res.status).toBe(403);
      expect(res.json().error.message).toContain(what);
      expect(res.json().error.message).toContain('no network');
      expect(seen).toEqual([]);
    });

    it('forwards an SDK-style request with client tools only, and drops the feature betas', async () => {
      const body = request(CLIENT_TOOLS, { stream: false, metadata: { user_id: 'u' } });
      const res = await send(body, { betas: `${SDK_BETAS},${FEATURE_BETAS}` });
      expect(res.status).toBe(200);
      expect(JSON.parse(seen[0]!.body)).toEqual(body);
      expect(seen[0]!.headers['anthropic-beta']).toBe(SDK_BETAS);
      expect(seen[0]!.headers['x-api-key']).toBe('sk-real-key');
      expect(Number(seen[0]!.headers['content-length'])).toBe(Buffer.byteLength(seen[0]!.body));
      expect(usage).toEqual([['family', 3, 1]]);
    });

    it('removes the beta header entirely when every beta in it is dropped, and still adds the OAuth one', async () => {
      await send(request([]), { betas: FEATURE_BETAS });
      expect(seen[0]!.headers['anthropic-beta']).toBeUndefined();
      secrets = { CLAUDE_CODE_OAUTH_TOKEN: 'oat', ANTHROPIC_BASE_URL: secrets.ANTHROPIC_BASE_URL };
      await send(request([]), { betas: FEATURE_BETAS });
      expect(seen[1]!.headers['anthropic-beta']).toBe('oauth-2025-04-20');
    });

    it('streams the answer and records its usage as before', async () => {
      answer = (res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(sse('message_start', { type: 'message_start', message: { usage: { input_tokens: 9 } } }));
        res.end(sse('message_delta', { type: 'message_delta', usage: { output_tokens: 4 } }));
      };
      const res = await send(request(CLIENT_TOOLS, { stream: true }));
      expect(res.body).toContain('message_delta');
      expect(usage).toEqual([['family', 9, 4]]);
    });

    it('checks count_tokens too, and sends the body it checked (one key, not a duplicate)', async () => {
      const sneaky = `{"model":"m","messages":[],"tools":[],"tools":[${JSON.stringify(WEB_SEARCH)}]}`;
      const res = await send(undefined, { path: '/v1/messages/count_tokens', raw: sneaky });
      expect(res.status).toBe(403);
      const plain = '{"model":"m","messages":[],"tools":[{"name":"a"}],  "tools" : []}';
      expect((await send(undefined, { raw: plain })).status).toBe(200);
      expect(seen[0]!.body).toBe('{"model":"m","messages":[],"tools":[]}');
    });

    it('answers 400 to a body that is not JSON or has a malformed tools field', async () => {
      const notJson = await send(undefined, { raw: 'model=claude' });
      expect(notJson.status).toBe(400);
      expect(notJson.json().error).toMatchObject({ type: 'invalid_request_error' });
      const badTools = await send({ model: 'm', tools: { type: 'web_search_20250305' } });
      expect(badTools.status).toBe(400);
      expect(badTools.json().error.message).toContain('tools');
      expect(seen).toEqual([]);
    });

    it('refuses a body over 32 MiB with 413 instead of buffering it', async () => {
      const res = await send(undefined, { raw: Buffer.alloc(33 * 1024 * 1024, 0x20) });
      expect(res.status).toBe(413);
      expect(res.json().error.type).toBe('invalid_request_error');
      expect(seen).toEqual([]);
    });

    it('applies a policy edit to the next request', async () => {
      expect((await send(request([WEB_SEARCH]))).status).toBe(403);
      writePolicy({});
      expect((await send(request([WEB_SEARCH]))).status).toBe(200);
    });
  });

  it('refuses web_search when the policy file is invalid, naming the file', async () => {
    fs.writeFileSync(policyFile(), '{"defualt": {}}');
    const res = await send(request([WEB_SEARCH]));
    expect(res.status).toBe(403);
    expect(res.json().error.message).toBe(
      `the server tool web_search_20250305 is not allowed for this group: network-policy.json is invalid (see the host log), so all egress is refused.`,
    );
  });

  it('forwards everything unchanged for a group with an open policy', async () => {
    writePolicy({ groups: { other: { noNetwork: true } } });
    const raw = JSON.stringify(
      request([...CLIENT_TOOLS, WEB_SEARCH, WEB_FETCH, CODE_EXECUTION], {
        mcp_servers: [{ type: 'url', url: 'https://mcp.example.com/sse', name: 'x' }],
      }),
      null,
      2,
    );
    const res = await send(undefined, { raw, betas: `${SDK_BETAS},${FEATURE_BETAS}` });
    expect(res.status).toBe(200);
    expect(seen[0]!.body).toBe(raw);
    expect(seen[0]!.headers['anthropic-beta']).toBe(`${SDK_BETAS},${FEATURE_BETAS}`);
  });

  // Server tools run on Anthropic's side, past the egress proxy: only a fully open policy lets them through.
  describe.each([
    ['a domain allow list', { groups: { family: { allow: ['example.com', '*.example.com'] } } }],
    ['deny rules only', { default: { deny: ['*.ads.example', 'tracker.example'] } }],
  ])('a group with %s', (_name, policy) => {
    beforeEach(() => writePolicy(policy));

    it.each([
      ['web_search', [WEB_SEARCH], {}],
      ['web_fetch', [{ ...WEB_FETCH, allowed_domains: ['example.com'] }], {}],
      ['code_execution', [CODE_EXECUTION], {}],
      ['the MCP connector', [], { mcp_servers: [{ type: 'url', url: 'https://example.com/mcp' }] }],
    ])('refuses %s, saying the policy is not fully open', async (what, tools, extra) => {
      const res = await send(request(tools, extra));
      expect(res.status).toBe(403);
      expect(res.json().error).toMatchObject({ type: 'permission_error' });
      expect(res.json().error.message).toContain(what);
      expect(res.json().error.message).toContain('its network policy is not fully open');
      expect(seen).toEqual([]);
    });

    it('forwards client tools and drops every feature beta', async () => {
      expect((await send(request(CLIENT_TOOLS), { betas: `${SDK_BETAS},${FEATURE_BETAS}` })).status).toBe(
        200,
      );
      expect(forwardedTools()).toEqual(CLIENT_TOOLS);
      expect(seen[0]!.headers['anthropic-beta']).toBe(SDK_BETAS);
    });
  });
});
