import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Secrets } from '../../src/env-file.js';
import { createModelProxyServer, type ModelProxyDeps } from '../../src/proxy/model-proxy.js';

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

const MESSAGE_START = sse('message_start', {
  type: 'message_start',
  message: {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    content: [],
    usage: {
      input_tokens: 10,
      cache_creation_input_tokens: 5,
      cache_read_input_tokens: 100,
      output_tokens: 1,
    },
  },
});
const TEXT_DELTA = sse('content_block_delta', {
  type: 'content_block_delta',
  index: 0,
  delta: { type: 'text_delta', text: 'Hello there' },
});
const MESSAGE_DELTA = sse('message_delta', {
  type: 'message_delta',
  delta: { stop_reason: 'end_turn' },
  usage: { output_tokens: 42 },
});
const MESSAGE_STOP = sse('message_stop', { type: 'message_stop' });

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
  ]);
}

describe('model proxy', () => {
  let dir: string;
  let socketPath: string;
  let upstream: http.Server;
  let upstreamPort: number;
  let handler: UpstreamHandler;
  let seen: SeenRequest[];
  let proxy: http.Server;
  let secrets: Secrets;
  let usage: Array<[string, number, number]>;
  let budget: number | undefined;
  let usedToday: number;
  let outcomes: Array<string | undefined>;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-model-'));
    socketPath = path.join(dir, 'api.sock');
    seen = [];
    usage = [];
    budget = undefined;
    usedToday = 0;
    outcomes = [];
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    upstream = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        handler(req, res, body);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as AddressInfo).port;
    secrets = { ANTHROPIC_API_KEY: 'sk-real-key', ANTHROPIC_BASE_URL: `http://127.0.0.1:${upstreamPort}` };

    const deps: ModelProxyDeps = {
      readSecrets: () => secrets,
      recordUsage: (folder, input, output) => usage.push([folder, input, output]),
      tokensUsedToday: () => usedToday,
      dailyTokenBudget: () => budget,
      onOutcome: (_folder, failure) => outcomes.push(failure?.cause),
      configDir: dir, // no network-policy.json: the open policy, requests pass unchanged
    };
    proxy = createModelProxyServer('family', deps);
    await new Promise<void>((resolve) => proxy.listen(socketPath, resolve));
  });

  afterEach(async () => {
    proxy.closeAllConnections();
    upstream.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await new Promise((resolve) => upstream.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A request from the sandbox side: the SDK's placeholder key and its usual headers. */
  function send(
    opts: { path?: string; headers?: http.OutgoingHttpHeaders; body?: string } = {},
    onChunk?: (chunk: string) => void,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath,
          method: 'POST',
          path: opts.path ?? '/v1/messages?beta=true',
          headers: {
            'content-type': 'application/json',
            'anthropic-version': '2023-06-01',
            'x-api-key': 'placeholder-key',
            'accept-encoding': 'gzip, br',
            ...opts.headers,
          },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
            onChunk?.(c.toString());
          });
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(
        opts.body ?? JSON.stringify({ model: 'claude-test', max_tokens: 10, messages: [], stream: true }),
      );
    });
  }

  it('replaces the placeholder key with the real one and asks for identity encoding', async () => {
    const res = await send({ body: '{"model":"m","messages":[]}' });
    expect(res.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['x-api-key']).toBe('sk-real-key');
    expect(JSON.stringify(seen[0]!.headers)).not.toContain('placeholder-key');
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(seen[0]!.headers['accept-encoding']).toBe('identity');
    expect(seen[0]!.headers['anthropic-version']).toBe('2023-06-01');
    expect(seen[0]!.url).toBe('/v1/messages?beta=true');
    expect(seen[0]!.body).toBe('{"model":"m","messages":[]}');
  });

  it('sends an OAuth token as a Bearer credential with the oauth beta header', async () => {
    secrets = { CLAUDE_CODE_OAUTH_TOKEN: 'oat-secret', ANTHROPIC_BASE_URL: secrets.ANTHROPIC_BASE_URL };
    await send({ headers: { authorization: 'Bearer placeholder', 'anthropic-beta': 'tools-2024' } });
    const headers = seen[0]!.headers;
    expect(headers.authorization).toBe('Bearer oat-secret');
    expect(headers['x-api-key']).toBeUndefined();
    expect(headers['anthropic-beta']).toBe('tools-2024,oauth-2025-04-20');
  });

  it('reads the credentials per request, so .env edits apply at once', async () => {
    await send();
    secrets = { ...secrets, ANTHROPIC_API_KEY: 'sk-rotated' };
    await send();
    expect(seen.map((r) => r.headers['x-api-key'])).toEqual(['sk-real-key', 'sk-rotated']);
  });

  it('keeps the path prefix of the base URL', async () => {
    secrets = { ...secrets, ANTHROPIC_BASE_URL: `http://127.0.0.1:${upstreamPort}/gateway/anthropic/` };
    await send();
    expect(seen[0]!.url).toBe('/gateway/anthropic/v1/messages?beta=true');
  });

  it('streams the answer chunk by chunk and records its usage once', async () => {
    let releaseRest!: () => void;
    const firstChunkArrived = new Promise<void>((resolve) => (releaseRest = resolve));
    let upstreamFinished = false;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(MESSAGE_START);
      // The rest is held back until the client has the first event: a buffering proxy never gets here.
      void withTimeout(firstChunkArrived, 5000, 'the first chunk at the client')
        .then(() => {
          res.write(TEXT_DELTA);
          res.write(MESSAGE_DELTA);
          upstreamFinished = true;
          res.end(MESSAGE_STOP);
        })
        .catch(() => res.destroy());
    };
    const chunks: Array<{ text: string; upstreamFinished: boolean }> = [];
    const res = await send({}, (text) => {
      chunks.push({ text, upstreamFinished });
      releaseRest();
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(chunks[0]!.upstreamFinished).toBe(false);
    expect(chunks[0]!.text).toContain('message_start');
    expect(res.body).toBe(MESSAGE_START + TEXT_DELTA + MESSAGE_DELTA + MESSAGE_STOP);
    await new Promise((r) => setImmediate(r));
    expect(usage).toEqual([['family', 115, 42]]);
  });

  it('records usage from a plain JSON answer', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'msg', content: [], usage: { input_tokens: 7, output_tokens: 3 } }));
    };
    const res = await send({ body: '{"stream":false}' });
    expect(JSON.parse(res.body)).toMatchObject({ usage: { input_tokens: 7 } });
    expect(usage).toEqual([['family', 7, 3]]);
  });

  it('refuses with 429 and notifies once the daily budget is spent, without calling upstream', async () => {
    budget = 1000;
    usedToday = 1000;
    const res = await send();
    expect(res.status).toBe(429);
    expect(JSON.parse(res.body)).toEqual({
      type: 'error',
      error: {
        type: 'rate_limit_error',
        message: "This group's daily budget of 1000 tokens is spent until midnight UTC.",
      },
    });
    expect(res.headers['x-should-retry']).toBe('false');
    expect(outcomes).toEqual(['budget-spent']);
    expect(seen).toHaveLength(0);
  });

  it('forwards while the budget is not yet spent', async () => {
    budget = 1000;
    usedToday = 999;
    expect((await send()).status).toBe(200);
    expect(outcomes).not.toContain('budget-spent');
  });

  it.each([
    [529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }],
    [500, { type: 'error', error: { type: 'api_error', message: 'Internal server error' } }],
    [429, { type: 'error', error: { type: 'rate_limit_error', message: 'Slow down' } }],
  ])('passes upstream status %i and its body through unchanged', async (status, body) => {
    handler = (_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end(JSON.stringify(body));
    };
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.body).toBe(JSON.stringify(body));
    expect(res.headers['retry-after']).toBe('3');
  });

  it('stays up through a persistent outage: each call fails retryably, none is counted, then it recovers', async () => {
    // What the SDK meets when the upstream keeps failing (its own retries take minutes end to end,
    // so the persistent case is proved here; the e2e suite proves a few failures then success).
    const failures: UpstreamHandler[] = [
      (_req, res) => {
        res.writeHead(529, { 'content-type': 'application/json' });
        res.end('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}');
      },
      (_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"type":"error","error":{"type":"api_error","message":"Internal server error"}}');
      },
      (req) => req.socket.destroy(), // dropped before any answer
    ];
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      handler = failures[i % failures.length]!;
      const res = await send();
      statuses.push(res.status);
      expect(res.headers['x-should-retry']).toBeUndefined(); // the SDK decides to retry, as with Anthropic
      expect(JSON.parse(res.body)).toMatchObject({ type: 'error' });
    }
    expect(statuses).toEqual(Array.from({ length: 10 }, () => [529, 500, 502]).flat());
    expect(usage).toEqual([]);
    expect(seen).toHaveLength(30);

    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(MESSAGE_START + MESSAGE_DELTA + MESSAGE_STOP);
    };
    expect((await send()).status).toBe(200);
    expect(usage).toEqual([['family', 115, 42]]);
  });

  it('drops the client connection when the upstream drops mid-stream', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(MESSAGE_START);
      setTimeout(() => res.socket?.destroy(), 50);
    };
    let received = '';
    const outcome = await new Promise<string>((resolve) => {
      const req = http.request(
        {
          socketPath,
          method: 'POST',
          path: '/v1/messages?beta=true',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.on('data', (c: Buffer) => (received += c.toString()));
          res.on('end', () => resolve(res.complete ? 'complete' : 'incomplete end'));
          res.on('error', (err) => resolve(`error: ${err.message}`));
        },
      );
      req.on('error', (err) => resolve(`error: ${err.message}`));
      req.end('{}');
    });
    expect(received).toContain('message_start');
    expect(outcome).toMatch(/^error: |incomplete/);
    expect(outcome).not.toBe('complete');
    // The input tokens that were spent before the drop are still counted.
    await new Promise((r) => setTimeout(r, 20));
    expect(usage).toEqual([['family', 115, 1]]);
  });

  it('answers 502 in the API error shape when the upstream is down', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    secrets = { ...secrets, ANTHROPIC_BASE_URL: `http://127.0.0.1:${deadPort}` };
    const res = await send();
    expect(res.status).toBe(502);
    const body = JSON.parse(res.body) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe('error');
    expect(body.error.type).toBe('api_error');
    expect(body.error.message).toContain('Could not reach');
  });

  it('answers 504 when the upstream goes silent', async () => {
    proxy.close();
    const quiet = createModelProxyServer('family', {
      readSecrets: () => secrets,
      recordUsage: () => undefined,
      tokensUsedToday: () => 0,
      dailyTokenBudget: () => undefined,
      configDir: dir,
      upstreamIdleTimeoutMs: 100,
    });
    const quietSocket = path.join(dir, 'quiet.sock');
    await new Promise<void>((resolve) => quiet.listen(quietSocket, resolve));
    handler = () => undefined; // never answers
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ socketPath: quietSocket, method: 'POST', path: '/v1/messages' }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end('{}');
      });
      expect(status).toBe(504);
    } finally {
      quiet.closeAllConnections();
      await new Promise((resolve) => quiet.close(resolve));
    }
  });

  it('answers 401 naming the .env file when no credential is configured', async () => {
    secrets = { ANTHROPIC_BASE_URL: secrets.ANTHROPIC_BASE_URL };
    const res = await send();
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({
      type: 'error',
      error: {
        type: 'authentication_error',
        message:
          'No model credentials: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN in $NANOCLAW_HOME/.env.',
      },
    });
    expect(seen).toHaveLength(0);
  });

  it('only forwards the Messages API', async () => {
    const res = await send({ path: '/v1/messages/batches' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect((await send({ path: '/v1/messages/count_tokens' })).status).toBe(200);
    expect(seen.map((r) => r.url)).toEqual(['/v1/messages/count_tokens']);
  });

  it('survives a client that disconnects mid-stream, and keeps serving', async () => {
    let upstreamClosed!: () => void;
    const upstreamSawClose = new Promise<void>((resolve) => (upstreamClosed = resolve));
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(MESSAGE_START);
      res.on('close', upstreamClosed);
    };
    await new Promise<void>((resolve) => {
      const req = http.request({ socketPath, method: 'POST', path: '/v1/messages' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end('{}');
    });
    await withTimeout(upstreamSawClose, 5000, 'the upstream request to be cancelled');
    handler = (_req, res) => res.end('{}');
    expect((await send()).status).toBe(200);
  });
});
