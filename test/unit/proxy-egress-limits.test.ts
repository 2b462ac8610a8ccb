import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logger } from '../../src/logger.js';
import {
  forbiddenAddressReason,
  isOwnAddress,
  systemInterfaceAddresses,
  type LookupFn,
} from '../../src/proxy/address-guard.js';
import {
  createEgressProxyServer,
  type EgressProxyDeps,
  type TcpTarget,
} from '../../src/proxy/egress-proxy.js';

/** A documentation-free public address the tests pretend the host has bound (never dialled). */
const HOST_PUBLIC = '93.184.216.34';

/** The host logger's output while `run` runs (the test environment otherwise silences it). */
async function captureLog(run: () => Promise<void>): Promise<string[]> {
  const stream = (logger as unknown as Record<symbol, { write(chunk: string): boolean }>)[
    pino.symbols.streamSym
  ]!;
  const originalWrite = stream.write.bind(stream);
  const level = logger.level;
  const lines: string[] = [];
  stream.write = (chunk: string) => lines.push(chunk) > 0;
  logger.level = 'info';
  try {
    await run();
  } finally {
    stream.write = originalWrite;
    logger.level = level;
  }
  return lines;
}

describe('egress proxy: host addresses and the connection cap', () => {
  let dir: string;
  let configDir: string;
  let socketPath: string;
  let target: http.Server;
  let targetPort: number;
  let proxy: http.Server | undefined;
  let dialled: TcpTarget[];

  const lookup: LookupFn = async (host) => {
    if (host === 'myhost.example') return [{ address: HOST_PUBLIC, family: 4 }];
    throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  };
  /** Dials loopback only; anything else fails locally, so no test traffic leaves the machine. */
  const connectTcp = (t: TcpTarget): net.Socket => {
    dialled.push(t);
    if (t.host === '127.0.0.1') return net.connect({ host: t.host, port: t.port });
    const socket = new net.Socket();
    process.nextTick(() => socket.destroy(new Error(`test refuses to dial ${t.host}`)));
    return socket;
  };
  const writePolicy = (policy: unknown) =>
    fs.writeFileSync(path.join(configDir, 'network-policy.json'), JSON.stringify(policy));

  async function startProxy(deps: Partial<EgressProxyDeps> = {}): Promise<void> {
    proxy = createEgressProxyServer('family', { configDir, lookup, connectTcp, ...deps });
    await new Promise<void>((resolve) => proxy!.listen(socketPath, resolve));
  }

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-egress-lim-'));
    configDir = path.join(dir, 'config');
    fs.mkdirSync(configDir);
    socketPath = path.join(dir, 'egress.sock');
    dialled = [];
    target = http.createServer((_req, res) => res.end('hello from target'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    targetPort = (target.address() as AddressInfo).port;
  });

  afterEach(async () => {
    if (proxy) {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy!.close(resolve));
      proxy = undefined;
    }
    target.closeAllConnections();
    await new Promise((resolve) => target.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Sends CONNECT and resolves with the status line's code and the socket, left open. */
  function openTunnel(authority: string): Promise<{ status: number; reply: string; socket: net.Socket }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      let received = '';
      socket.on('data', (c: Buffer) => {
        received += c.toString();
        if (!received.includes('\r\n\r\n')) return;
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1]);
        if (status !== 200) socket.once('close', () => resolve({ status, reply: received, socket }));
        else resolve({ status, reply: received, socket });
      });
      socket.on('error', reject);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
  }

  function get(url: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, path: url, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** Closes a client socket and waits until the proxy has let go of it too. */
  async function closeAndWait(socket: net.Socket, remaining: number): Promise<void> {
    socket.destroy();
    for (let i = 0; i < 500; i++) {
      const open = await new Promise<number>((resolve) => proxy!.getConnections((_e, n) => resolve(n)));
      if (open <= remaining) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the proxy kept the connection open');
  }

  describe("the host's own addresses", () => {
    it('refuses a public address bound on the host, by literal, by name and inside IPv6', async () => {
      await startProxy({ interfaceAddresses: () => ['127.0.0.1', HOST_PUBLIC, 'fe80::1'] });
      for (const authority of [`${HOST_PUBLIC}:443`, 'myhost.example:443', `[::ffff:${HOST_PUBLIC}]:22`]) {
        const { status, reply } = await openTunnel(authority);
        expect(status, authority).toBe(403);
        expect(reply).toContain("the host's own addresses are not reachable from a sandbox");
      }
      const viaHttp = await get(`http://${HOST_PUBLIC}:8080/`);
      expect(viaHttp.status).toBe(403);
      expect(dialled).toEqual([]);
    });

    it('refuses every non-loopback address of this machine with the real interface list', async () => {
      await startProxy();
      const own = Object.values(os.networkInterfaces())
        .flat()
        .flatMap((i) => (i && !i.internal ? [i.address] : []));
      expect(systemInterfaceAddresses()).toEqual(expect.arrayContaining(own));
      for (const address of own) {
        const { status, reply } = await openTunnel(
          address.includes(':') ? `[${address}]:80` : `${address}:80`,
        );
        expect(status, address).toBe(403);
        // Public ones are caught only by the interface list; private ones already by the ranges.
        if (!forbiddenAddressReason(address)) expect(reply).toContain("the host's own");
      }
      expect(dialled).toEqual([]);
    });

    it('lets a target the user listed in allowPrivateTargets through', async () => {
      writePolicy({ allowPrivateTargets: [`${HOST_PUBLIC}:8443`] });
      await startProxy({ interfaceAddresses: () => [HOST_PUBLIC] });
      expect((await openTunnel(`${HOST_PUBLIC}:8443`)).status).toBe(502); // allowed; the test dialler refuses
      expect(dialled).toEqual([{ host: HOST_PUBLIC, port: 8443, family: 4 }]);
    });

    it('compares addresses in canonical form', () => {
      expect(isOwnAddress('2001:DB8:0:0::5', ['2001:db8::5'])).toBe(true);
      expect(isOwnAddress(`::ffff:${HOST_PUBLIC}`, [HOST_PUBLIC])).toBe(true);
      expect(isOwnAddress('93.184.216.35', [HOST_PUBLIC])).toBe(false);
      expect(forbiddenAddressReason(HOST_PUBLIC)).toBeUndefined(); // only the interface list catches it
    });
  });

  describe('the connection cap', () => {
    beforeEach(() => writePolicy({ allowPrivateTargets: [`127.0.0.1:${targetPort}`] }));

    it('refuses connections over the cap with 429, logs each refusal, and admits again once one closes', async () => {
      writePolicy({ allowPrivateTargets: [`127.0.0.1:${targetPort}`], default: { maxConnections: 2 } });
      await startProxy();
      const lines = await captureLog(async () => {
        const first = await openTunnel(`127.0.0.1:${targetPort}`);
        const second = await openTunnel(`127.0.0.1:${targetPort}`);
        expect([first.status, second.status]).toEqual([200, 200]);

        const third = await openTunnel(`127.0.0.1:${targetPort}`);
        expect(third.status).toBe(429);
        expect(third.reply).toContain('this group already has 2 open connections');
        const viaHttp = await get(`http://127.0.0.1:${targetPort}/`);
        expect(viaHttp.status).toBe(429);
        expect(viaHttp.body).toContain('maxConnections in network-policy.json');

        await closeAndWait(first.socket, 1);
        const again = await openTunnel(`127.0.0.1:${targetPort}`);
        expect(again.status).toBe(200);
        await closeAndWait(second.socket, 1);
        await closeAndWait(again.socket, 0);
      });
      const messages = lines.map((l) => JSON.parse(l) as { msg: string; status?: number });
      expect(messages.filter((m) => m.msg === 'egress refused' && m.status === 429)).toHaveLength(2);
      expect(dialled).toHaveLength(3);
    });

    it('takes the cap from network-policy.json per group', async () => {
      writePolicy({
        allowPrivateTargets: [`127.0.0.1:${targetPort}`],
        default: { maxConnections: 5 },
        groups: { family: { maxConnections: 1 } },
      });
      await startProxy();
      const first = await openTunnel(`127.0.0.1:${targetPort}`);
      expect(first.status).toBe(200);
      const second = await openTunnel(`127.0.0.1:${targetPort}`);
      expect(second.status).toBe(429);
      expect(second.reply).toContain('already has 1 open connections');
      first.socket.destroy();
    });
  });
});
