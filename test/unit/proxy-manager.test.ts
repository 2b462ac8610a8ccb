import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_UID } from '../../src/config.js';
import { ProxyManager, type ProxyDeps } from '../../src/proxy/proxy-manager.js';

function get(socketPath: string, reqPath: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: reqPath, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('ProxyManager', () => {
  let home: string;
  let proxyDir: string;
  let configDir: string;
  let manager: ProxyManager;

  const deps = (): ProxyDeps => ({
    proxyDir,
    configDir,
    readSecrets: () => ({}),
    recordUsage: () => undefined,
    tokensUsedToday: () => 0,
    dailyTokenBudget: () => undefined,
  });

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-pm-'));
    proxyDir = path.join(home, 'data', 'proxy');
    configDir = path.join(home, 'config');
    manager = new ProxyManager(deps());
  });

  afterEach(async () => {
    await manager.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('listens on api.sock and egress.sock in the group folder, which only its owner can enter', async () => {
    await manager.ensureGroup('family');
    const dir = path.join(proxyDir, 'family');
    expect(fs.statSync(proxyDir).mode & 0o777).toBe(0o755);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    for (const name of ['api.sock', 'egress.sock']) {
      const st = fs.statSync(path.join(dir, name));
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['api.sock', 'egress.sock']);

    // The model socket answers as the model proxy (here: no credentials, naming $NANOCLAW_HOME/.env).
    const model = await get(path.join(dir, 'api.sock'), '/v1/messages', 'POST');
    expect(model.status).toBe(401);
    expect(model.body).toContain('$NANOCLAW_HOME/.env');
    // The egress socket answers as the forward proxy.
    const egress = await get(path.join(dir, 'egress.sock'), 'http://127.0.0.1:1/');
    expect(egress.status).toBe(403);
  });

  it('hands the folder and sockets to the sandbox uid: it can connect, another local user cannot', async () => {
    const isRoot = process.getuid?.() === 0;
    // As root, the default sandbox uid; otherwise the sandbox runs as (and chown can only give) us.
    const sandboxUid = isRoot ? DEFAULT_SANDBOX_UID : process.getuid!();
    await manager.stop();
    manager = new ProxyManager({ ...deps(), sandboxUid });
    await manager.ensureGroup('family');
    const dir = path.join(proxyDir, 'family');
    for (const p of [dir, path.join(dir, 'api.sock'), path.join(dir, 'egress.sock')]) {
      const st = fs.statSync(p);
      expect([st.uid, st.gid], p).toEqual([sandboxUid, sandboxUid]);
      expect(st.mode & 0o077, p).toBe(0);
    }
    if (!isRoot) return; // connecting as other uids needs root; the modes above say the same
    fs.chmodSync(home, 0o755); // as a real NANOCLAW_HOME is: the sandbox user passes through it
    const connectAs = (uid: number) =>
      spawnSync(
        process.execPath,
        [
          '-e',
          `require('net').connect(${JSON.stringify(path.join(dir, 'api.sock'))})` +
            `.on('connect', () => { console.log('connected'); process.exit(0); })` +
            `.on('error', (e) => { console.log(e.code); process.exit(0); });`,
        ],
        { uid, gid: uid, encoding: 'utf8', cwd: '/', timeout: 20_000 },
      ).stdout.trim();
    expect(connectAs(sandboxUid)).toBe('connected');
    expect(connectAs(65534)).toBe('EACCES');
  });

  it('is idempotent, also for concurrent calls', async () => {
    await Promise.all([manager.ensureGroup('family'), manager.ensureGroup('family')]);
    const before = fs.statSync(path.join(proxyDir, 'family', 'api.sock')).ino;
    await manager.ensureGroup('family');
    expect(fs.statSync(path.join(proxyDir, 'family', 'api.sock')).ino).toBe(before);
    expect((await get(path.join(proxyDir, 'family', 'api.sock'), '/v1/messages', 'POST')).status).toBe(401);
  });

  it('keeps groups apart: each group has its own directory and sockets', async () => {
    await manager.ensureGroup('family');
    await manager.ensureGroup('work');
    expect(fs.readdirSync(proxyDir).sort()).toEqual(['family', 'work']);
    expect(fs.statSync(path.join(proxyDir, 'work', 'egress.sock')).isSocket()).toBe(true);
  });

  it('replaces a stale socket left by a previous run', async () => {
    const dir = path.join(proxyDir, 'family');
    fs.mkdirSync(dir, { recursive: true });
    // A socket file nobody listens on: listen, hard-link, close (closing unlinks only the original).
    const old = net.createServer();
    const tmpSock = path.join(dir, 'old.sock');
    await new Promise<void>((resolve) => old.listen(tmpSock, resolve));
    fs.linkSync(tmpSock, path.join(dir, 'api.sock'));
    await new Promise((resolve) => old.close(resolve));
    fs.rmSync(tmpSock, { force: true });
    expect(fs.statSync(path.join(dir, 'api.sock')).isSocket()).toBe(true);

    await manager.ensureGroup('family');
    expect((await get(path.join(dir, 'api.sock'), '/v1/messages', 'POST')).status).toBe(401);
  });

  it('refuses a folder name that could escape the proxy directory, and can retry after a failure', async () => {
    await expect(manager.ensureGroup('../etc')).rejects.toThrow(/invalid group folder/);
    await expect(manager.ensureGroup('global')).rejects.toThrow(/invalid group folder/);

    const dir = path.join(proxyDir, 'family');
    fs.mkdirSync(path.join(dir, 'egress.sock'), { recursive: true }); // something that is not a socket
    await expect(manager.ensureGroup('family')).rejects.toThrow(/cannot start the proxies of family/);
    expect(fs.existsSync(path.join(dir, 'api.sock'))).toBe(false);
    fs.rmSync(path.join(dir, 'egress.sock'), { recursive: true });
    await manager.ensureGroup('family');
    expect(fs.statSync(path.join(dir, 'egress.sock')).isSocket()).toBe(true);
  });

  it('stop() closes open tunnels and removes the sockets', async () => {
    const target = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as AddressInfo).port;
    fs.mkdirSync(configDir, { recursive: true });
    fs.writeFileSync(
      path.join(configDir, 'network-policy.json'),
      JSON.stringify({ allowPrivateTargets: [`127.0.0.1:${port}`] }),
    );
    try {
      await manager.ensureGroup('family');
      const egressSock = path.join(proxyDir, 'family', 'egress.sock');
      const client = net.connect(egressSock);
      client.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
      await new Promise<void>((resolve) => {
        client.once('data', () => resolve());
        client.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
      });

      await manager.stop();
      await closed;
      expect(fs.existsSync(egressSock)).toBe(false);
      expect(fs.existsSync(path.join(proxyDir, 'family', 'api.sock'))).toBe(false);
    } finally {
      target.close();
    }
  });

  it('refuses a socket path longer than unix sockets allow', async () => {
    const deep = path.join(home, 'x'.repeat(120), 'proxy');
    const longManager = new ProxyManager({ ...deps(), proxyDir: deep });
    await expect(longManager.ensureGroup('family')).rejects.toThrow(/shorter NANOCLAW_HOME/);
    await longManager.stop();
  });
});
