import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Secrets } from '../../src/env-file.js';
import { upstreamCause } from '../../src/proxy/model-proxy.js';
import { ProxyManager } from '../../src/proxy/proxy-manager.js';

let lastHeaders: http.IncomingHttpHeaders = {};

function post(socketPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'POST', path: '/v1/messages', agent: false }, (res) => {
      lastHeaders = res.headers;
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

describe('model proxy failure causes', () => {
  let home: string;
  let manager: ProxyManager;
  let upstream: http.Server;
  let status: number | 'hang';
  let secrets: Secrets;
  let used: number;
  let socket: string;

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-pf-'));
    status = 200;
    used = 0;
    upstream = http.createServer((req, res) => {
      req.resume();
      if (status === 'hang') return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    secrets = { ANTHROPIC_API_KEY: 'sk-one', ANTHROPIC_BASE_URL: url };
    manager = new ProxyManager({
      proxyDir: path.join(home, 'data', 'proxy'),
      configDir: path.join(home, 'config'),
      readSecrets: () => secrets,
      recordUsage: () => undefined,
      tokensUsedToday: () => used,
      dailyTokenBudget: (folder) => (folder === 'capped' ? 100 : undefined),
      upstreamIdleTimeoutMs: 200,
    });
    await manager.ensureGroup('family');
    socket = path.join(manager.socketDir('family'), 'api.sock');
  });

  afterEach(async () => {
    await manager.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    fs.rmSync(home, { recursive: true, force: true });
  });

  it.each([
    [200, null],
    [400, 'invalid-request'],
    [401, 'invalid-credentials'],
    [403, 'invalid-credentials'],
    [404, 'invalid-request'],
    [429, 'upstream'],
    [500, 'upstream'],
    [529, 'upstream'],
  ] as const)('upstream %i → %s', (code, cause) => expect(upstreamCause(code)).toBe(cause));

  it('records the group’s last failure with its kind, and forgets it once a call works', async () => {
    const before = Date.now();
    status = 529;
    expect(await post(socket)).toBe(529);
    expect(manager.lastFailure('family', before)).toEqual({ kind: 'transient', cause: 'upstream' });
    expect(manager.lastFailure('family', Date.now() + 1)).toBeUndefined();
    expect(manager.lastFailure('other')).toBeUndefined();
    status = 'hang';
    expect(await post(socket)).toBe(504);
    expect(manager.lastFailure('family')).toEqual({ kind: 'transient', cause: 'timeout' });
    status = 400;
    await post(socket);
    expect(manager.lastFailure('family')).toEqual({ kind: 'permanent', cause: 'invalid-request' });
    status = 200;
    await post(socket);
    expect(manager.lastFailure('family')).toBeUndefined();
  });

  it('knows without a model call whether credentials are missing, refused and unchanged, or the budget spent', async () => {
    expect(manager.holds('no-credentials', 'family')).toBe(false);
    expect(manager.holds('invalid-credentials', 'family')).toBe(false);
    secrets = { ANTHROPIC_BASE_URL: secrets.ANTHROPIC_BASE_URL };
    expect(manager.holds('no-credentials', 'family')).toBe(true);
    expect(await post(socket)).toBe(401);
    expect(manager.lastFailure('family')).toEqual({ kind: 'permanent', cause: 'no-credentials' });

    secrets = { ...secrets, ANTHROPIC_API_KEY: 'sk-bad' };
    status = 401;
    await post(socket);
    expect(manager.lastFailure('family')?.cause).toBe('invalid-credentials');
    // The SDK would retry a refused key for minutes.
    expect(lastHeaders['x-should-retry']).toBe('false');
    expect(manager.holds('invalid-credentials', 'family')).toBe(true);
    // Another key in .env: the refusal no longer holds (only a model call can tell if it works).
    secrets = { ...secrets, ANTHROPIC_API_KEY: 'sk-good' };
    expect(manager.holds('invalid-credentials', 'family')).toBe(false);

    expect(manager.holds('budget-spent', 'capped')).toBe(false);
    used = 100;
    expect(manager.holds('budget-spent', 'capped')).toBe(true);
    expect(manager.holds('budget-spent', 'family')).toBe(false);
    expect(manager.holds('image-missing', 'family')).toBeUndefined();
  });
});
