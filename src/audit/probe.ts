import type childProcess from 'node:child_process';
import type crypto from 'node:crypto';
import type fs from 'node:fs';
import type net from 'node:net';
import { findFingerprints, polyHash } from './fingerprint.js';
import { REPORT_MARKER, type ProbeConfig, type ProbeReport } from './types.js';

/**
 * The probe: runs as the sandbox user inside a real sandbox and attacks the boundary from there.
 * It is shipped as source text (this function's own, see probeSource) on the sandbox's stdin, so
 * the same code runs on every runtime without mounting anything extra. It must therefore stay
 * self-contained: Node's modules and the fingerprint helper come in as a parameter (the shipped
 * module imports or defines them).
 *
 * Order matters: it looks (scan, network, hardening) before it plants anything, so its own plants
 * never show up in what it saw.
 */
/** Everything the probe uses from outside, passed in: a name imported here would not exist there. */
export interface ProbeDeps {
  fs: typeof fs;
  net: typeof net;
  crypto: typeof crypto;
  childProcess: typeof childProcess;
  findFingerprints: typeof findFingerprints;
}

export async function auditProbe(config: ProbeConfig, deps: ProbeDeps): Promise<ProbeReport> {
  const { fs, net, crypto, findFingerprints } = deps;
  const { spawnSync } = deps.childProcess;
  const errText = (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    return e.code ?? e.message ?? String(err);
  };
  const readText = (file: string): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  };
  const sha256 = (bytes: Uint8Array) => crypto.createHash('sha256').update(bytes).digest('hex');

  // Identity and hardening, as the kernel reports them for this very process.
  const status = readText('/proc/self/status') ?? '';
  const statusField = (name: string) =>
    status
      .split('\n')
      .find((line) => line.startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim() ?? null;

  // Everything readable, bounded: process environments and command lines first, then files.
  const started = Date.now();
  const scan = { files: 0, bytes: 0, processes: 0, unreadable: 0, truncated: false };
  const secretHits = new Map<string, string[]>();
  const sentinelHits = new Map<string, string[]>();
  const credentials: ProbeReport['credentials'] = [];
  const note = (map: Map<string, string[]>, key: string, where: string) => {
    const list = map.get(key) ?? [];
    if (list.length < 50) list.push(where);
    map.set(key, list);
  };
  const inspect = (buf: Buffer, where: string) => {
    for (const index of findFingerprints(buf, config.secrets, sha256)) note(secretHits, String(index), where);
    for (const sentinel of config.sentinels)
      if (buf.includes(sentinel.token)) note(sentinelHits, sentinel.id, where);
  };
  const credentialName = /KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH/i;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    for (const part of ['environ', 'cmdline']) {
      let buf: Buffer;
      try {
        buf = fs.readFileSync(`/proc/${pid}/${part}`);
      } catch {
        scan.unreadable++;
        continue;
      }
      inspect(buf, `/proc/${pid}/${part}`);
      if (part !== 'environ') continue;
      scan.processes++;
      for (const entry of buf.toString('utf8').split('\0')) {
        const eq = entry.indexOf('=');
        if (eq > 0 && credentialName.test(entry.slice(0, eq)) && credentials.length < 200)
          credentials.push({
            where: `/proc/${pid}/environ`,
            name: entry.slice(0, eq),
            value: entry.slice(eq + 1),
          });
      }
    }
  }
  const { maxFiles, maxFileBytes, maxTotalBytes, budgetMs } = config.limits;
  const visited = new Set<string>();
  const skip = new Set(['/proc', '/sys', '/dev']);
  const walk = (dir: string, depth: number): void => {
    if (visited.has(dir) || skip.has(dir) || depth > 16) return;
    visited.add(dir);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      scan.unreadable++;
      return;
    }
    for (const name of names) {
      if (scan.files >= maxFiles || scan.bytes >= maxTotalBytes || Date.now() - started > budgetMs) {
        scan.truncated = true;
        return;
      }
      const full = dir === '/' ? `/${name}` : `${dir}/${name}`;
      let stat;
      try {
        stat = fs.lstatSync(full); // links are never followed, FIFOs never opened
      } catch {
        continue;
      }
      if (stat.isDirectory()) {
        if (name !== 'node_modules' && name !== '.git') walk(full, depth + 1);
        continue;
      }
      if (!stat.isFile()) continue;
      let fd: number;
      try {
        fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch {
        scan.unreadable++;
        continue;
      }
      try {
        const buf = Buffer.alloc(Math.min(stat.size, maxFileBytes));
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        scan.files++;
        scan.bytes += n;
        inspect(buf.subarray(0, n), full);
      } catch {
        scan.unreadable++;
      } finally {
        fs.closeSync(fd);
      }
    }
  };
  for (const root of config.scanRoots) walk(root, 0);
  for (const sentinel of config.sentinels)
    if (fs.lstatSync(sentinel.hostPath, { throwIfNoEntry: false }))
      note(sentinelHits, sentinel.id, sentinel.hostPath);

  // What main sees of the project: .env, store/ and data/ must be masked.
  const listOrNull = (dir: string) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return null;
    }
  };
  const envFile = `${config.projectPath}/.env`;
  const envText = fs.existsSync(envFile) ? readText(envFile) : undefined;
  const project: ProbeReport['project'] = {
    visible: fs.existsSync(config.projectPath),
    env: envText === undefined ? 'absent' : envText ? 'content' : 'empty',
    store: listOrNull(`${config.projectPath}/store`),
    data: listOrNull(`${config.projectPath}/data`),
  };

  // Network: interfaces first; a direct connection beyond loopback only when `lo` is alone, so it
  // fails inside this network namespace and nothing leaves the machine.
  const dev = readText('/proc/net/dev');
  const interfaces = dev
    ? dev
        .split('\n')
        .slice(2)
        .map((line) => line.split(':')[0]?.trim() ?? '')
        .filter(Boolean)
    : null;
  const loOnly = interfaces !== null && interfaces.every((name) => name === 'lo');
  const tcp = (host: string, port: number) =>
    new Promise<{ outcome: 'connected' | 'refused' | 'timeout'; detail: string }>((resolve) => {
      const socket = net.connect({ host, port });
      const done = (outcome: 'connected' | 'refused' | 'timeout', detail: string) => {
        socket.destroy();
        resolve({ outcome, detail });
      };
      socket.setTimeout(3000, () => done('timeout', 'no answer in 3 s'));
      socket.once('connect', () => done('connected', `connected to ${host}:${port}`));
      socket.once('error', (err) => done('refused', errText(err)));
    });
  const direct: ProbeReport['direct'] = [];
  for (const target of config.direct) {
    if (target.host !== '127.0.0.1' && !loOnly) {
      direct.push({
        id: target.id,
        outcome: 'skipped',
        detail: 'not tried: the sandbox has a network interface',
      });
      continue;
    }
    direct.push({ id: target.id, ...(await tcp(target.host, target.port)) });
  }
  const viaProxy = (method: string, target: string) =>
    new Promise<{ status: number | null; detail: string }>((resolve) => {
      const socket = net.connect({ path: config.egressSocket });
      let head = '';
      const done = (statusCode: number | null, detail: string) => {
        socket.destroy();
        resolve({ status: statusCode, detail });
      };
      socket.setTimeout(5000, () => done(null, 'no answer in 5 s'));
      socket.once('error', (err) => done(null, errText(err)));
      socket.once('connect', () => {
        const host = method === 'CONNECT' ? target : new URL(target).host;
        socket.write(`${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        const line = head.split('\r\n')[0] ?? '';
        if (head.includes('\r\n') || head.length > 4096)
          done(Number(/^HTTP\/1\.[01] (\d{3})/.exec(line)?.[1] ?? NaN) || null, line.slice(0, 200));
      });
      socket.once('end', () => done(null, head ? head.slice(0, 200) : 'closed without an answer'));
    });
  const egress: ProbeReport['egress'] = [];
  for (const request of config.egress)
    egress.push({ id: request.id, ...(await viaProxy(request.method, request.target)) });

  // Escalation: a new user namespace, the root filesystem, limits, runtime sockets.
  let userns: ProbeReport['userns'];
  const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => fs.existsSync(p));
  if (!unshare) userns = { result: 'unavailable', detail: 'no unshare binary to try with' };
  else {
    const tried = spawnSync(unshare, ['-U', 'true'], { timeout: 5000, encoding: 'utf8' });
    userns =
      tried.status === 0
        ? { result: 'allowed', detail: 'unshare -U true succeeded' }
        : {
            result: 'refused',
            detail: (tried.stderr || String(tried.error ?? tried.status)).trim().slice(0, 200),
          };
  }
  const rootLine = (readText('/proc/self/mountinfo') ?? '')
    .split('\n')
    .filter((line) => line.split(' ')[4] === '/')
    .at(-1);
  const firstOf = (files: string[]) => {
    for (const file of files) {
      const text = readText(file);
      if (text !== null) return text.trim();
    }
    return null;
  };
  const cgroup = {
    pids: firstOf(['/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max']),
    memory: firstOf(['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']),
  };
  const runtimeSockets = [
    '/var/run/docker.sock',
    '/run/docker.sock',
    '/run/containerd/containerd.sock',
    '/run/podman/podman.sock',
    '/var/run/crio/crio.sock',
  ].filter((p) => fs.existsSync(p));

  // Plants, last: links, FIFOs and swapped folders where the host writes and reads afterwards.
  const plants: ProbeReport['plants'] = [];
  for (const step of config.plants) {
    try {
      let detail = 'done';
      if (step.op === 'rename') {
        if (fs.lstatSync(step.path, { throwIfNoEntry: false })) fs.renameSync(step.path, step.to ?? '');
        else detail = 'nothing there';
      } else if (step.op === 'rmtree') fs.rmSync(step.path, { recursive: true, force: true });
      else if (step.op === 'rmdir') fs.rmdirSync(step.path);
      else if (step.op === 'symlink') fs.symlinkSync(step.to ?? '', step.path);
      else if (step.op === 'write') fs.writeFileSync(step.path, 'audit\n', { flag: 'wx' });
      else {
        const made = spawnSync('mkfifo', [step.path], { encoding: 'utf8', timeout: 5000 });
        if (made.status !== 0) throw new Error((made.stderr || 'mkfifo failed').trim());
      }
      plants.push({ id: step.id, ok: true, detail });
    } catch (err) {
      plants.push({ id: step.id, ok: false, detail: errText(err) });
    }
  }

  return {
    uid: process.getuid?.() ?? -1,
    status: {
      capEff: statusField('CapEff'),
      capPrm: statusField('CapPrm'),
      noNewPrivs: statusField('NoNewPrivs'),
      seccomp: statusField('Seccomp'),
    },
    userns,
    rootMount: rootLine?.split(' ')[5] ?? null,
    cgroup,
    runtimeSockets,
    interfaces,
    direct,
    egress,
    scan,
    secretHits: [...secretHits].map(([index, where]) => ({ index: Number(index), where })),
    sentinelHits: [...sentinelHits].map(([id, where]) => ({ id, where })),
    credentials,
    project,
    plants,
  };
}

/** The module the sandbox runs: the helpers, this config, the probe, and one marked report line. */
export function probeSource(config: ProbeConfig): string {
  return [
    "import fs from 'node:fs';",
    "import net from 'node:net';",
    "import crypto from 'node:crypto';",
    "import childProcess from 'node:child_process';",
    // Under tsx/vitest, esbuild wraps functions in __name(fn, "name") to keep their names.
    'const __name = (fn) => fn;',
    polyHash.toString(),
    findFingerprints.toString(),
    `const auditProbe = ${auditProbe.toString()};`,
    `const report = await auditProbe(${JSON.stringify(config)}, { fs, net, crypto, childProcess, findFingerprints });`,
    `process.stdout.write('\\n' + ${JSON.stringify(REPORT_MARKER)} + JSON.stringify(report) + '\\n');`,
  ].join('\n');
}

/**
 * NODE_OPTIONS for the sandbox: a preload that reads the probe from stdin, runs it and exits before
 * the sandbox's own entry point (the agent-runner) starts. A preload rather than a replaced
 * command because docker keeps an image's ENTRYPOINT when a command is given; this way the probe
 * runs in the same node process, as the same user, on every runtime.
 */
export function probePreload(): string {
  const bootstrap = [
    'let source = "";',
    'for await (const chunk of process.stdin) source += chunk;',
    'try {',
    '  await import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));',
    '  process.exit(0);',
    '} catch (err) {',
    '  process.stderr.write("audit probe failed: " + (err && err.stack || err) + "\\n");',
    '  process.exit(3);',
    '}',
  ].join('\n');
  return `--import=data:text/javascript;base64,${Buffer.from(bootstrap).toString('base64')}`;
}
