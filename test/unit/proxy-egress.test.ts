import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LookupFn } from '../../src/proxy/address-guard.js';
import { createEgressProxyServer, type TcpTarget } from '../../src/proxy/egress-proxy.js';

const LOOPBACK = new Set(['127.0.0.1', '::1']);

describe('egress proxy', () => {
  let dir: string;
  let configDir: string;
  let socketPath: string;
  let target: http.Server;
  let targetPort: number;
  let proxy: http.Server;
  let dialled: TcpTarget[];
  let dns: Record<string, string[]>;
  let lookups: string[];

  const lookup: LookupFn = async (host) => {
    lookups.push(host);
    const addresses = dns[host];
    if (!addresses) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  /** Records every dial; anything but loopback fails locally, so no test traffic leaves the machine. */
  const connectTcp = (t: TcpTarget): net.Socket => {
    dialled.push(t);
    if (LOOPBACK.has(t.host)) return net.connect({ host: t.host, port: t.port });
    const socket = new net.Socket();
    process.nextTick(() => socket.destroy(new Error(`test refuses to dial ${t.host}`)));
    return socket;
  };

  const writePolicy = (policy: unknown) =>
    fs.writeFileSync(path.join(configDir, 'network-policy.json'), JSON.stringify(policy, null, 2));

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-egress-'));
    configDir = path.join(dir, 'config');
    fs.mkdirSync(configDir);
    socketPath = path.join(dir, 'egress.sock');
    dialled = [];
    lookups = [];
    dns = {};
    target = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-target': 'yes' });
        res.end(`hello from target: ${req.method} ${req.url} host=${req.headers.host} body=${body}`);
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    targetPort = (target.address() as AddressInfo).port;
    proxy = createEgressProxyServer('family', { configDir, lookup, connectTcp });
    await new Promise<void>((resolve) => proxy.listen(socketPath, resolve));
  });

  afterEach(async () => {
    proxy.closeAllConnections();
    target.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await new Promise((resolve) => target.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function proxiedRequest(
    url: string,
    opts: { method?: string; body?: string; headers?: http.OutgoingHttpHeaders } = {},
  ): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath, method: opts.method ?? 'GET', path: url, headers: opts.headers },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  /** Sends raw bytes on a fresh connection and returns everything until the proxy closes it. */
  function rawExchange(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      let received = '';
      socket.on('data', (c: Buffer) => (received += c.toString()));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
      socket.write(text);
    });
  }

  /** CONNECT, then (if accepted) a plain HTTP request through the tunnel. */
  function tunnel(authority: string): Promise<{ status: number; reply: string }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      let received = '';
      let status = 0;
      socket.on('data', (c: Buffer) => {
        received += c.toString();
        if (status !== 0 || !received.includes('\r\n\r\n')) return;
        status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1]);
        if (status === 200) {
          received = '';
          socket.write(`GET /through-tunnel HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
        }
      });
      socket.on('close', () => resolve({ status, reply: received }));
      socket.on('error', reject);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
  }

  describe('an allow-listed local target', () => {
    beforeEach(() => writePolicy({ allowPrivateTargets: [`127.0.0.1:${targetPort}`] }));

    it('forwards plain HTTP with the body and Host header', async () => {
      const res = await proxiedRequest(`http://127.0.0.1:${targetPort}/hello?x=1`, {
        method: 'POST',
        body: 'ping',
        headers: { 'proxy-authorization': 'Basic c2VjcmV0', 'proxy-connection': 'keep-alive' },
      });
      expect(res.status).toBe(200);
      expect(res.headers['x-target']).toBe('yes');
      expect(res.body).toBe(`hello from target: POST /hello?x=1 host=127.0.0.1:${targetPort} body=ping`);
      expect(dialled).toEqual([{ host: '127.0.0.1', port: targetPort, family: 4 }]);
    });

    it('tunnels CONNECT', async () => {
      const { status, reply } = await tunnel(`127.0.0.1:${targetPort}`);
      expect(status).toBe(200);
      expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
      expect(reply).toContain('hello from target: GET /through-tunnel');
    });

    it('still refuses another port on the same loopback address', async () => {
      const { status, reply } = await tunnel(`127.0.0.1:${targetPort + 1}`);
      expect(status).toBe(403);
      expect(reply).toContain('loopback');
      expect(dialled).toEqual([]);
    });

    it('refuses it when the group has no network', async () => {
      writePolicy({
        allowPrivateTargets: [`127.0.0.1:${targetPort}`],
        groups: { family: { noNetwork: true } },
      });
      const res = await proxiedRequest(`http://127.0.0.1:${targetPort}/`);
      expect(res.status).toBe(403);
      expect(res.body).toContain('no network');
      expect((await tunnel(`127.0.0.1:${targetPort}`)).status).toBe(403);
      expect(dialled).toEqual([]);
    });

    it('picks up policy edits on the next connection', async () => {
      expect((await proxiedRequest(`http://127.0.0.1:${targetPort}/`)).status).toBe(200);
      writePolicy({ default: { noNetwork: true }, allowPrivateTargets: [`127.0.0.1:${targetPort}`] });
      expect((await proxiedRequest(`http://127.0.0.1:${targetPort}/`)).status).toBe(403);
    });

    it('fails closed when the policy file becomes invalid', async () => {
      fs.writeFileSync(
        path.join(configDir, 'network-policy.json'),
        `{"allowPrivateTargets": ["127.0.0.1:${targetPort}"], "defualt": {}}`,
      );
      const res = await proxiedRequest(`http://127.0.0.1:${targetPort}/`);
      expect(res.status).toBe(403);
      expect(res.body).toContain('invalid');
      expect(dialled).toEqual([]);
    });
  });

  it('connects a name to the address it checked, without resolving it again', async () => {
    dns['public.example'] = ['93.184.216.34'];
    const { status } = await tunnel('public.example:443');
    expect(status).toBe(502); // the test connector refuses non-loopback dials
    expect(lookups).toEqual(['public.example']);
    expect(dialled).toEqual([{ host: '93.184.216.34', port: 443, family: 4 }]);
  });

  it('connects an allow-listed name that resolves to an explicitly allowed local target', async () => {
    dns['api.allowed.example'] = ['127.0.0.1'];
    writePolicy({
      default: { allow: ['api.allowed.example'] },
      allowPrivateTargets: [`api.allowed.example:${targetPort}`],
    });
    const res = await proxiedRequest(`http://api.allowed.example:${targetPort}/via-name`);
    expect(res.status).toBe(200);
    expect(res.body).toContain(`GET /via-name host=api.allowed.example:${targetPort}`);
  });

  it.each([
    ['127.0.0.1:22', 'loopback'],
    ['10.0.0.5:443', 'private'],
    ['172.16.4.4:443', 'private'],
    ['192.168.1.1:80', 'private'],
    ['100.64.1.1:80', 'CGNAT'],
    ['169.254.1.1:80', 'link-local'],
    ['169.254.169.254:80', 'cloud metadata'],
    ['[::1]:443', 'loopback'],
    ['[fe80::1]:443', 'link-local'],
    ['[fd00:ec2::254]:80', 'cloud metadata'],
    ['[::ffff:127.0.0.1]:443', 'loopback'],
    ['[::ffff:a9fe:a9fe]:80', 'cloud metadata'],
    ['0x7f000001:80', 'loopback'],
  ])('refuses CONNECT %s (%s) before dialling', async (authority, reason) => {
    const { status, reply } = await tunnel(authority);
    expect(status).toBe(403);
    expect(reply).toContain(reason);
    expect(dialled).toEqual([]);
  });

  it.each([
    ['http://192.168.0.10/admin', 'private'],
    ['http://169.254.169.254/latest/meta-data/', 'cloud metadata'],
    ['http://[::1]:8080/', 'loopback'],
    ['http://2130706433/', 'loopback'],
  ])('refuses plain HTTP to %s (%s) before dialling', async (url, reason) => {
    const res = await proxiedRequest(url);
    expect(res.status).toBe(403);
    expect(res.body).toContain(reason);
    expect(dialled).toEqual([]);
  });

  it.each([
    ['intranet.example', ['10.1.2.3'], 'private'],
    ['metadata.example', ['169.254.169.254'], 'cloud metadata'],
    ['rebind.example', ['127.0.0.1'], 'loopback'],
    ['mixed.example', ['93.184.216.34', '192.168.7.7'], 'private'],
    ['v6.example', ['fc00::99'], 'private'],
  ])('refuses %s when it resolves to %j', async (host, addresses, reason) => {
    dns[host] = addresses;
    const viaConnect = await tunnel(`${host}:443`);
    expect(viaConnect.status).toBe(403);
    expect(viaConnect.reply).toContain(reason);
    const viaHttp = await proxiedRequest(`http://${host}/`);
    expect(viaHttp.status).toBe(403);
    expect(dialled).toEqual([]);
  });

  it('refuses a denied domain without resolving it', async () => {
    dns['tracker.ads.example'] = ['93.184.216.34'];
    writePolicy({ default: { deny: ['*.ads.example'] } });
    const { status, reply } = await tunnel('Tracker.Ads.Example:443');
    expect(status).toBe(403);
    expect(reply).toContain('denied');
    expect(lookups).toEqual([]);
    expect(dialled).toEqual([]);
  });

  it('enforces the allow list', async () => {
    dns['docs.example'] = ['93.184.216.34'];
    dns['other.example'] = ['93.184.216.35'];
    writePolicy({ groups: { family: { allow: ['docs.example'] } } });
    const refused = await tunnel('other.example:443');
    expect(refused.status).toBe(403);
    expect(refused.reply).toContain('allow list');
    const allowed = await tunnel('docs.example:443');
    expect(allowed.status).toBe(502); // allowed by policy; the test connector then refuses to dial out
    expect(dialled.map((d) => d.host)).toEqual(['93.184.216.34']);
  });

  it('answers 502 for a name that does not resolve', async () => {
    const res = await proxiedRequest('http://no-such-host.example/');
    expect(res.status).toBe(502);
    expect(res.body).toContain('cannot resolve');
  });

  it.each([
    ['an origin-form request', 'GET /just/a/path HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['an https absolute-URI', 'GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['CONNECT without a port', 'CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['CONNECT with a path', 'CONNECT example.com:443/x HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['CONNECT to port 0', 'CONNECT example.com:0 HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['garbage', 'HELLO THERE\r\n\r\n'],
  ])('answers 400 to %s and keeps running', async (_name, text) => {
    const reply = await rawExchange(text);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(dialled).toEqual([]);
    writePolicy({ allowPrivateTargets: [`127.0.0.1:${targetPort}`] });
    expect((await proxiedRequest(`http://127.0.0.1:${targetPort}/still-up`)).status).toBe(200);
  });

  it('survives a client that drops a tunnel mid-way', async () => {
    writePolicy({ allowPrivateTargets: [`127.0.0.1:${targetPort}`] });
    await new Promise<void>((resolve) => {
      const socket = net.connect(socketPath);
      socket.on('data', () => {
        socket.destroy();
        resolve();
      });
      socket.on('error', () => undefined);
      socket.write(`CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\n\r\n`);
    });
    expect((await tunnel(`127.0.0.1:${targetPort}`)).status).toBe(200);
  });
});
