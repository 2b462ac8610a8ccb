import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerGroup } from '../../src/groups.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { installLoopbackTripwire } from '../helpers/loopback-tripwire.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * SPEC §5.2 and §7 through real sandboxes: a sandbox has no network but loopback, so the host's
 * loopback services are out of reach; the egress proxy is the only way out, and it refuses
 * loopback, private and metadata targets (before dialling), denied domains, and everything for a
 * group without network, while an explicitly allow-listed local target works by HTTP and CONNECT.
 *
 * No packet leaves loopback: refused targets are literal addresses or names the policy denies
 * before resolving, and a tripwire in this process blocks and records any other dial.
 */
const REFUSED = 'Refused by the NanoClaw egress proxy:';

/** Shell helpers for the probes; {{NAME}} placeholders are filled in per run. */
const HELPERS = [
  'echo PROBE',
  // Direct connection (proxy bypassed): prints "<http code> exit=<curl exit code>".
  `direct() { curl --noproxy '*' -s -o /dev/null -m 5 -w '%{http_code}' "$@"; echo " exit=$?"; }`,
  // Through HTTP_PROXY, for every host (NO_PROXY lists loopback for the model forwarder).
  `proxied() { curl --noproxy '' -g -s -m 5 -w ' status=%{http_code}' "$@" | tr -d '\\n'; }`,
  // A CONNECT by hand to the egress forwarder; on 200, one line goes through the tunnel.
  'rawConnect() {',
  '  exec 3<>/dev/tcp/127.0.0.1/${HTTP_PROXY##*:}',
  `  printf 'CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' "$1" "$1" >&3`,
  '  IFS= read -r line <&3',
  `  case "$line" in *" 200 "*) IFS= read -r _ <&3; printf 'ping-through-tunnel\\n' >&3;; esac`,
  `  { printf '%s\\n' "$line"; timeout 5 cat <&3; } | tr -d '\\r' | tr '\\n' '|'`,
  '}',
];

const MAIN_PROBE = [
  ...HELPERS,
  'echo "PROXY_ENV=$HTTP_PROXY $HTTPS_PROXY"',
  `echo "NET=$(awk -F: 'NR>2{print $1}' /proc/net/dev | tr -d ' ' | tr '\\n' ,)"`,
  'echo "DOCKER_SOCKET=$(ls /run/docker.sock /var/run/docker.sock 2>/dev/null | wc -l)"',
  'echo "DIRECT_MOCK=$(direct http://127.0.0.1:{{MOCK}}/v1/models)"',
  'echo "DIRECT_LOCAL=$(direct http://127.0.0.1:{{LOCAL}}/api/status)"',
  'echo "DIRECT_ALLOWED=$(direct http://127.0.0.1:{{HTTP}}/direct)"',
  `echo "DEVTCP=$( { bash -c 'exec 3<>/dev/tcp/127.0.0.1/{{MOCK}}' 2>&1; echo "exit=$?"; } | tr '\\n' ' ')"`,
  'echo "PROXY_LOOPBACK=$(proxied http://127.0.0.1:{{MOCK}}/v1/models)"',
  'echo "PROXY_LOCALHOST=$(proxied http://localhost:{{LOCAL}}/api/status)"',
  'echo "PROXY_V6=$(proxied http://[::1]:{{MOCK}}/v1/models)"',
  'echo "PROXY_PRIVATE=$(proxied http://10.0.0.1/)"',
  'echo "PROXY_PRIVATE_TLS=$(rawConnect 192.168.1.1:443)"',
  'echo "PROXY_METADATA=$(proxied http://169.254.169.254/latest/meta-data/)"',
  'echo "PROXY_DENIED=$(proxied http://denied.example/)"',
  'echo "PROXY_DENIED_TLS=$(rawConnect api.denied.example:443)"',
  'echo "ALLOWED_HTTP=$(proxied http://127.0.0.1:{{HTTP}}/hello-http)"',
  'echo "ALLOWED_TUNNEL=$(proxied -p http://127.0.0.1:{{HTTP}}/hello-tunnel)"',
  'echo "ALLOWED_ECHO=$(rawConnect 127.0.0.1:{{ECHO}})"',
];

const OFFLINE_PROBE = [
  ...HELPERS,
  'echo "OFF_HTTP=$(proxied http://127.0.0.1:{{HTTP}}/offline)"',
  'echo "OFF_TUNNEL=$(rawConnect 127.0.0.1:{{ECHO}})"',
  'echo "OFF_DIRECT=$(direct http://127.0.0.1:{{HTTP}}/offline-direct)"',
];

/** The value after `NAME=` on its own line of the agent's answer. */
function field(answer: string, name: string): string {
  const match = new RegExp(`^${name}=(.*)$`, 'm').exec(answer);
  if (!match) throw new Error(`no ${name}= line in the answer:\n${answer}`);
  return match[1]!.trim();
}

interface LocalTargets {
  httpPort: number;
  echoPort: number;
  /** `GET /path host` of every request the allow-listed HTTP server got. */
  httpSeen: string[];
  echoSeen: string[];
  close(): Promise<void>;
}

async function startLocalTargets(): Promise<LocalTargets> {
  const httpSeen: string[] = [];
  const echoSeen: string[] = [];
  const httpServer = http.createServer((req, res) => {
    httpSeen.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.end(`allowed ${req.method} ${req.url}`);
  });
  // Echoes the first chunk back and ends: enough to prove bytes flow both ways through a tunnel.
  const echoServer = net.createServer((socket) => {
    socket.once('data', (chunk) => {
      echoSeen.push(chunk.toString().trim());
      socket.end(chunk);
    });
    socket.on('error', () => undefined);
  });
  const listen = (server: net.Server) =>
    new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
    );
  const [httpPort, echoPort] = [await listen(httpServer), await listen(echoServer)];
  return {
    httpPort,
    echoPort,
    httpSeen,
    echoSeen,
    close: async () => {
      httpServer.closeAllConnections();
      await Promise.all(
        [httpServer, echoServer].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}

describe.each(['docker', 'bwrap'] as const)('egress only through the proxy (%s)', (runtime) => {
  let host: E2eHost;
  let targets: LocalTargets;
  let tripwire: ReturnType<typeof installLoopbackTripwire>;
  let mainAnswer: Promise<string> | undefined;

  const fill = (lines: string[]) =>
    lines
      .join('\n')
      .replaceAll('{{MOCK}}', String(host.mock.port))
      .replaceAll('{{LOCAL}}', String(host.local.port))
      .replaceAll('{{HTTP}}', String(targets.httpPort))
      .replaceAll('{{ECHO}}', String(targets.echoPort));

  const probe = async (chat: string, lines: string[]) => {
    const started = Date.now();
    await host.post(chat, `RUN: ${fill(lines)}`);
    const answer = await host.reply(chat, (t) => t.startsWith('RESULT:') && t.includes('PROBE'));
    console.log(`[${runtime}] ${chat} probe answered in ${Date.now() - started} ms`);
    return answer;
  };
  /** One sandbox run answers all of main's questions; each test reads its part. */
  const mainProbe = () => (mainAnswer ??= probe('local:main', MAIN_PROBE));

  beforeAll(async () => {
    tripwire = installLoopbackTripwire();
    targets = await startLocalTargets();
    host = await startE2eHost({
      runtime,
      script: scenarioScript,
      prepare: (home) => {
        const configDir = path.join(home, 'config');
        fs.mkdirSync(configDir, { recursive: true });
        fs.writeFileSync(
          path.join(configDir, 'network-policy.json'),
          JSON.stringify({
            default: { deny: ['denied.example', '*.denied.example'] },
            groups: { offline: { noNetwork: true } },
            allowPrivateTargets: [`127.0.0.1:${targets.httpPort}`, `127.0.0.1:${targets.echoPort}`],
          }),
        );
      },
    });
    const registered = registerGroup(host.app.store, host.app.config, {
      jid: 'local:offline',
      name: 'offline',
      folder: 'offline',
      requiresTrigger: false,
    });
    expect(registered.ok).toBe(true);
    host.app.ipc.syncWatchers();
  });
  afterAll(async () => {
    await host?.stop();
    await targets?.close();
    tripwire?.uninstall();
  });

  it('has only loopback and no direct way to the host’s loopback services', async () => {
    const answer = await mainProbe();
    expect(field(answer, 'PROXY_ENV')).toMatch(/^http:\/\/127\.0\.0\.1:\d+ http:\/\/127\.0\.0\.1:\d+$/);
    expect(field(answer, 'NET')).toBe('lo,');
    expect(field(answer, 'DOCKER_SOCKET')).toBe('0');
    // curl exit 7: nothing listens on these ports in the sandbox's own loopback.
    expect(field(answer, 'DIRECT_MOCK')).toBe('000 exit=7');
    expect(field(answer, 'DIRECT_LOCAL')).toBe('000 exit=7');
    expect(field(answer, 'DIRECT_ALLOWED')).toBe('000 exit=7');
    expect(field(answer, 'DEVTCP')).toMatch(/Connection refused.*exit=1/);
    expect(targets.httpSeen.filter((r) => r.includes('/direct'))).toEqual([]);
  }, 180_000);

  it('refuses loopback, private and metadata targets through the proxy, before dialling them', async () => {
    const answer = await mainProbe();
    const refused = (target: string, why: string) =>
      `${REFUSED} ${target} is refused: ${why} addresses are not reachable from a sandbox`;
    expect(field(answer, 'PROXY_LOOPBACK')).toBe(`${refused('127.0.0.1', 'loopback')} status=403`);
    expect(field(answer, 'PROXY_LOCALHOST')).toBe(
      `${refused('localhost (resolves to 127.0.0.1)', 'loopback')} status=403`,
    );
    expect(field(answer, 'PROXY_V6')).toBe(`${refused('::1', 'loopback')} status=403`);
    expect(field(answer, 'PROXY_PRIVATE')).toBe(`${refused('10.0.0.1', 'private')} status=403`);
    expect(field(answer, 'PROXY_PRIVATE_TLS')).toMatch(/^HTTP\/1\.1 403 Forbidden\|/);
    expect(field(answer, 'PROXY_PRIVATE_TLS')).toContain(refused('192.168.1.1', 'private'));
    expect(field(answer, 'PROXY_METADATA')).toBe(
      `${refused('169.254.169.254', 'cloud metadata')} status=403`,
    );
    // Nothing was dialled: not the private addresses, and not the mock's loopback port.
    expect(tripwire.attempts).toEqual([]);
    expect(host.mock.requests.filter((r) => !r.path.startsWith('/v1/messages'))).toEqual([]);
  }, 180_000);

  it('refuses a domain the network policy denies, for http and CONNECT', async () => {
    const answer = await mainProbe();
    expect(field(answer, 'PROXY_DENIED')).toBe(
      `${REFUSED} denied.example is denied by the network policy (denied.example) status=403`,
    );
    expect(field(answer, 'PROXY_DENIED_TLS')).toMatch(/^HTTP\/1\.1 403 Forbidden\|/);
    expect(field(answer, 'PROXY_DENIED_TLS')).toContain(
      `${REFUSED} api.denied.example is denied by the network policy (*.denied.example)`,
    );
  }, 180_000);

  it('reaches an allow-listed local target through the proxy, by http and through CONNECT tunnels', async () => {
    const answer = await mainProbe();
    expect(field(answer, 'ALLOWED_HTTP')).toBe('allowed GET /hello-http status=200');
    expect(field(answer, 'ALLOWED_TUNNEL')).toBe('allowed GET /hello-tunnel status=200');
    expect(field(answer, 'ALLOWED_ECHO')).toBe('HTTP/1.1 200 Connection Established|ping-through-tunnel|');
    const authority = `127.0.0.1:${targets.httpPort}`;
    expect(targets.httpSeen).toEqual([`GET /hello-http ${authority}`, `GET /hello-tunnel ${authority}`]);
    expect(targets.echoSeen).toEqual(['ping-through-tunnel']);
  }, 180_000);

  it('refuses everything for a group whose policy says noNetwork', async () => {
    await mainProbe(); // so the allow-listed targets' logs are complete before this group runs
    const seenBefore = targets.httpSeen.length;
    const answer = await probe('local:offline', OFFLINE_PROBE);
    const why = 'the network policy gives this group no network';
    expect(field(answer, 'OFF_HTTP')).toBe(`${REFUSED} ${why} status=403`);
    expect(field(answer, 'OFF_TUNNEL')).toMatch(/^HTTP\/1\.1 403 Forbidden\|/);
    expect(field(answer, 'OFF_TUNNEL')).toContain(`${REFUSED} ${why}`);
    expect(field(answer, 'OFF_DIRECT')).toBe('000 exit=7');
    expect(targets.httpSeen).toHaveLength(seenBefore);
    expect(targets.echoSeen).toEqual(['ping-through-tunnel']);
    expect(tripwire.attempts).toEqual([]);
  }, 180_000);
});
