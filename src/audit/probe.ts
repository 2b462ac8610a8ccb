import type childProcess from 'node:child_process';
import crypto from 'node:crypto';
import type fs from 'node:fs';
import type net from 'node:net';
import { z } from 'zod';

/**
 * The probe runs as the sandbox user inside a real sandbox and attacks the boundary from there.
 * It is shipped as source text on the sandbox's stdin (probeSource), so auditProbe and the
 * fingerprint helpers must stay self-contained: no imported names, Node's modules come in `deps`.
 */

/** A secret's length, 31-bit rolling hash and SHA-256: enough to find it, not to recover it. */
export type Fingerprint = { len: number; roll: number; sha256: string };
/** `expect: 'fail'` marks what must be refused. */
export type PlantStep = { id: string; op: string; path: string; to?: string; expect: 'ok' | 'fail' };

/**
 * `sentinels`: host files no sandbox may see, looked for at their host path and by content.
 * `direct`: connections that must fail; beyond loopback tried only when `lo` is alone.
 * `egress`: requests the egress proxy must refuse (an `http://` URL is a GET, else a CONNECT).
 */
export interface ProbeConfig {
  sentinels: { id: string; hostPath: string; token: string }[];
  secrets: Fingerprint[];
  scanRoots: string[];
  direct: { id: string; host: string; port: number }[];
  egressSocket: string;
  egress: { id: string; target: string }[];
  projectPath: string;
  plants: PlantStep[];
}

export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';

const text = z.string().nullable();
const names = z.array(z.string()).nullable();
const where = z.array(z.string()).max(50);
const result = { id: z.string(), detail: z.string() };
/** The probe is our code, but its report crosses the boundary: parsed like any other input. */
export const probeReportSchema = z.object({
  uid: z.number(),
  status: z.object({ capEff: text, capPrm: text, noNewPrivs: text, seccomp: text }),
  userns: z.object({ result: z.enum(['refused', 'allowed', 'unavailable']), detail: z.string() }),
  rootMount: text,
  cgroup: z.object({ pids: text, memory: text }),
  runtimeSockets: z.array(z.string()),
  interfaces: names,
  direct: z.array(z.object({ ...result, outcome: z.enum(['connected', 'refused', 'timeout', 'skipped']) })),
  egress: z.array(z.object({ ...result, status: z.number().nullable() })),
  scan: z.object({ files: z.number(), truncated: z.boolean() }),
  secretHits: z.array(z.object({ index: z.number(), where })),
  sentinelHits: z.array(z.object({ id: z.string(), where })),
  project: z.object({
    visible: z.boolean(),
    env: z.enum(['absent', 'empty', 'content']),
    store: names,
    data: names,
  }),
  plants: z.array(z.object({ ...result, ok: z.boolean() })),
});
export type ProbeReport = z.infer<typeof probeReportSchema>;

function polyHash(bytes: Uint8Array, start: number, len: number): number {
  let h = 0;
  for (let i = start; i < start + len; i++) h = (h * 257 + (bytes[i] ?? 0)) % 2147483647;
  return h;
}

/** Indexes of the fingerprints whose secret occurs in `buf`; SHA-256 only where the roll matches. */
export function findFingerprints(buf: Uint8Array, fps: Fingerprint[], sha256: (b: Uint8Array) => string) {
  const mod = 2147483647;
  const found = new Set<number>();
  for (const len of new Set(fps.map((f) => f.len))) {
    let pow = 1; // 257^(len-1): the weight of the byte leaving the window
    for (let i = 1; i < len; i++) pow = (pow * 257) % mod;
    let h = polyHash(buf, 0, len);
    for (let i = 0; len > 0 && i + len <= buf.length; i++) {
      const out = i > 0 ? ((buf[i - 1] ?? 0) * pow) % mod : 0;
      if (i > 0) h = ((h - out + mod) * 257 + (buf[i + len - 1] ?? 0)) % mod;
      fps.forEach((fp, index) => {
        if (fp.len === len && fp.roll === h && sha256(buf.subarray(i, i + len)) === fp.sha256)
          found.add(index);
      });
    }
  }
  return [...found];
}

export const sha256Hex = (bytes: Uint8Array) => crypto.createHash('sha256').update(bytes).digest('hex');

export function fingerprint(secret: string): Fingerprint {
  const bytes = Buffer.from(secret, 'utf8');
  return { len: bytes.length, roll: polyHash(bytes, 0, bytes.length), sha256: sha256Hex(bytes) };
}

type Deps = { fs: typeof fs; net: typeof net; crypto: typeof crypto; childProcess: typeof childProcess };

/** Looks (files, network, hardening) before it plants, so its own plants never show in what it saw. */
export async function auditProbe(
  config: ProbeConfig,
  { fs, net, crypto, childProcess }: Deps,
): Promise<ProbeReport> {
  const { spawnSync } = childProcess;
  const attempt = <T, F>(fn: () => T, fallback: F): T | F => {
    try {
      return fn();
    } catch {
      return fallback;
    }
  };
  const read = (file: string) => attempt(() => fs.readFileSync(file, 'utf8'), null);
  const list = (dir: string) => attempt(() => fs.readdirSync(dir), null);
  const errText = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);

  const started = Date.now();
  const scan = { files: 0, truncated: false };
  const hits = { secret: new Map<number, string[]>(), sentinel: new Map<string, string[]>() };
  const note = <K>(map: Map<K, string[]>, key: K, at: string) => map.set(key, [...(map.get(key) ?? []), at]);
  const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
  const inspect = (buf: Buffer | null, at: string) => {
    if (!buf) return;
    for (const index of findFingerprints(buf, config.secrets, sha256)) note(hits.secret, index, at);
    for (const s of config.sentinels) if (buf.includes(s.token)) note(hits.sentinel, s.id, at);
  };
  for (const pid of list('/proc')?.filter((d) => /^\d+$/.test(d)) ?? [])
    for (const at of [`/proc/${pid}/environ`, `/proc/${pid}/cmdline`])
      inspect(
        attempt(() => fs.readFileSync(at), null),
        at,
      );
  // Bounded; links are never followed, FIFOs never opened, only regular files read.
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  const readFile = (file: string, size: number) => {
    const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      const buf = Buffer.alloc(Math.min(size, 4 * 2 ** 20));
      return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  };
  const visited = new Set(['/proc', '/sys', '/dev']);
  const walk = (dir: string, depth: number): void => {
    if (visited.has(dir) || depth > 16) return;
    visited.add(dir);
    for (const name of list(dir) ?? []) {
      scan.truncated ||= scan.files >= 20_000 || Date.now() - started > 20_000;
      const full = `${dir === '/' ? '' : dir}/${name}`;
      const st = scan.truncated ? null : attempt(() => fs.lstatSync(full), null);
      if (st?.isDirectory() && name !== 'node_modules' && name !== '.git') walk(full, depth + 1);
      const buf = st?.isFile() ? attempt(() => readFile(full, st.size), null) : null;
      inspect(buf, full);
      if (buf) scan.files++;
    }
  };
  for (const root of config.scanRoots) walk(root, 0);
  for (const s of config.sentinels)
    if (attempt(() => fs.lstatSync(s.hostPath), null)) note(hits.sentinel, s.id, s.hostPath);

  const p = config.projectPath;
  const env = !fs.existsSync(`${p}/.env`) ? 'absent' : read(`${p}/.env`) ? 'content' : 'empty';
  const project = {
    visible: fs.existsSync(p),
    env,
    store: list(`${p}/store`),
    data: list(`${p}/data`),
  } as const;

  const devs = read('/proc/net/dev')?.split('\n').slice(2);
  const interfaces = devs?.map((line) => line.split(':')[0]?.trim() ?? '').filter(Boolean) ?? null;
  type Outcome = 'connected' | 'refused' | 'timeout';
  const dial = (to: net.NetConnectOpts, request?: string) =>
    new Promise<{ outcome: Outcome; status: number | null; detail: string }>((resolve) => {
      const socket = net.connect(to);
      let head = '';
      const done = (outcome: Outcome, detail: string) => {
        socket.destroy();
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]) || null;
        resolve({ outcome, status, detail: detail.slice(0, 200) });
      };
      socket.setTimeout(5000, () => done('timeout', 'no answer in 5 s'));
      socket.once('error', (err) => done('refused', errText(err)));
      socket.once('connect', () => (request ? socket.write(request) : done('connected', 'connected')));
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (head.includes('\r\n')) done('connected', head.split('\r\n')[0] ?? '');
      });
      socket.once('end', () => done('connected', head || 'closed without an answer'));
    });
  const direct: ProbeReport['direct'] = [];
  for (const { id, host, port } of config.direct)
    direct.push(
      host === '127.0.0.1' || interfaces?.every((name) => name === 'lo')
        ? { id, ...(await dial({ host, port })) }
        : { id, outcome: 'skipped', detail: 'not tried: the sandbox has a network interface' },
    );
  const egress: ProbeReport['egress'] = [];
  for (const { id, target } of config.egress) {
    const url = target.startsWith('http://') ? new URL(target) : null;
    const head = `${url ? 'GET' : 'CONNECT'} ${target} HTTP/1.1\r\nHost: ${url?.host ?? target}\r\n`;
    egress.push({ id, ...(await dial({ path: config.egressSocket }, `${head}Connection: close\r\n\r\n`)) });
  }

  const tried = spawnSync('unshare', ['-U', 'true'], { timeout: 5000, encoding: 'utf8' });
  const missing = tried.error && errText(tried.error) === 'ENOENT';
  const userns = {
    result: tried.status === 0 ? 'allowed' : missing ? 'unavailable' : 'refused',
    detail: (tried.stderr || String(tried.error ?? tried.status)).trim().slice(0, 200),
  } as const;
  const status = read('/proc/self/status') ?? '';
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1] ?? null;
  const first = (...files: string[]) =>
    files.map((f) => read(f)?.trim()).find((t) => t !== undefined) ?? null;
  const root = read('/proc/self/mountinfo')
    ?.match(/^\S+ \S+ \S+ \S+ \/ (\S+)/gm)
    ?.at(-1);
  const sockets = ['/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock'];

  const plants = config.plants.map(({ id, op, path, to = '' }) => {
    try {
      if (op === 'rename') fs.renameSync(path, to);
      else if (op === 'rmtree') fs.rmSync(path, { recursive: true, force: true });
      else if (op === 'rmdir') fs.rmdirSync(path);
      else if (op === 'symlink') fs.symlinkSync(to, path);
      else if (op === 'write') fs.writeFileSync(path, 'audit\n', { flag: 'wx' });
      else if (spawnSync('mkfifo', [path], { timeout: 5000 }).status !== 0) throw new Error('mkfifo failed');
      return { id, ok: true, detail: 'done' };
    } catch (err) {
      return { id, ok: false, detail: errText(err) };
    }
  });

  return {
    uid: process.getuid?.() ?? -1,
    status: {
      capEff: field('CapEff'),
      capPrm: field('CapPrm'),
      noNewPrivs: field('NoNewPrivs'),
      seccomp: field('Seccomp'),
    },
    userns,
    rootMount: root?.split(' ')[5] ?? null,
    cgroup: {
      pids: first('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'),
      memory: first('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'),
    },
    runtimeSockets: [...sockets, '/run/podman/podman.sock', '/var/run/crio/crio.sock'].filter((s) =>
      fs.existsSync(s),
    ),
    interfaces,
    direct,
    egress,
    scan,
    secretHits: [...hits.secret].map(([index, at]) => ({ index, where: at.slice(0, 50) })),
    sentinelHits: [...hits.sentinel].map(([id, at]) => ({ id, where: at.slice(0, 50) })),
    project,
    plants,
  };
}

/** The module the sandbox runs with `node --input-type=module -`: it prints one marked report line. */
export function probeSource(config: ProbeConfig): string {
  return [
    "import fs from 'node:fs'; import net from 'node:net'; import crypto from 'node:crypto';",
    "import childProcess from 'node:child_process';",
    'const __name = (fn) => fn;', // esbuild (tsx, vitest) wraps functions in __name(fn, "name")
    polyHash.toString(),
    findFingerprints.toString(),
    `const report = await (${auditProbe.toString()})(${JSON.stringify(config)}, { fs, net, crypto, childProcess });`,
    `process.stdout.write('\\n' + ${JSON.stringify(REPORT_MARKER)} + JSON.stringify(report) + '\\n');`,
  ].join('\n');
}
