import type childProcess from 'node:child_process';
import crypto from 'node:crypto';
import type fs from 'node:fs';
import type net from 'node:net';
import { z } from 'zod';

// auditProbe, hasSecret and polyHash run in the sandbox as source text: they may use no imported names.
// A secret's length, 31-bit rolling hash and SHA-256: enough to find it, not to recover it.
type Fingerprint = { len: number; roll: number; sha256: string };
export type PlantStep = { id: string; op: string; path: string; to?: string };
export interface ProbeConfig {
  sentinels: { id: string; hostPath: string; token: string }[];
  secrets: Fingerprint[];
  scanRoots: string[];
  dials: Record<string, string>; // id: `host:port`, or a request line for the egress proxy
  egressSocket: string;
  shell: Record<string, string>; // id: a command for sh -c
  plants: PlantStep[];
}

export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';
const results = <T extends z.ZodRawShape>(shape: T) =>
  z.array(z.object({ id: z.string(), detail: z.string(), ...shape }));
// Our probe, but its report crosses the boundary: parsed like any other input.
export const probeReportSchema = z.object({
  interfaces: z.array(z.string()).nullable(),
  dials: results({
    outcome: z.enum(['connected', 'refused', 'timeout', 'skipped']),
    status: z.number().nullable(),
  }),
  scan: z.object({ files: z.number(), truncated: z.boolean() }),
  hits: z.record(z.string(), z.array(z.string()).max(50)), // sentinel id or `apiKey`: where seen
  shell: z.record(z.string(), z.object({ code: z.number().nullable(), out: z.string() })),
  plants: results({ ok: z.boolean() }),
});
export type ProbeReport = z.infer<typeof probeReportSchema>;

function polyHash(bytes: Uint8Array, len: number) {
  let h = 0;
  for (let i = 0; i < len; i++) h = (h * 257 + bytes[i]!) % 2147483647;
  return h;
}

// Whether a fingerprinted secret occurs in `buf`; SHA-256 only where the rolling hash matches.
export function hasSecret(buf: Uint8Array, fps: Fingerprint[], sha256: (b: Uint8Array) => string) {
  const mod = 2147483647;
  return fps.some(({ len, roll, sha256: sum }) => {
    if (!len || len > buf.length) return false;
    let pow = 1; // the weight of the byte leaving the window
    for (let i = 1; i < len; i++) pow = (pow * 257) % mod;
    for (let i = 0, h = polyHash(buf, len); ; i++) {
      if (h === roll && sha256(buf.subarray(i, i + len)) === sum) return true;
      if (i + len >= buf.length) return false;
      h = ((h - ((buf[i]! * pow) % mod) + mod) * 257 + buf[i + len]!) % mod;
    }
  });
}

export const sha256Hex = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
export function fingerprint(secret: string): Fingerprint {
  const bytes = Buffer.from(secret);
  return { len: bytes.length, roll: polyHash(bytes, bytes.length), sha256: sha256Hex(bytes) };
}

type Deps = { fs: typeof fs; net: typeof net; crypto: typeof crypto; childProcess: typeof childProcess };

// Looks before it plants, so its own plants never show in what it saw.
export async function auditProbe(
  c: ProbeConfig,
  { fs, net, crypto, childProcess }: Deps,
): Promise<ProbeReport> {
  const attempt = <T>(fn: () => T) => {
    try {
      return fn();
    } catch {
      return null;
    }
  };
  const run = (cmd: string, ...args: string[]) =>
    childProcess.spawnSync(cmd, args, { timeout: 5000, encoding: 'utf8' });
  const started = Date.now();
  const scan = { files: 0, truncated: false };
  const hits: Record<string, string[]> = {};
  const note = (id: string, at: string) => (hits[id] ??= []).length < 50 && hits[id].push(at);
  const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
  const inspect = (at: string, read: () => Buffer) => {
    const buf = attempt(read);
    if (!buf) return;
    if (hasSecret(buf, c.secrets, sha256)) note('apiKey', at);
    for (const s of c.sentinels) if (buf.includes(s.token)) note(s.id, at);
    return true;
  };
  for (const pid of attempt(() => fs.readdirSync('/proc')) ?? [])
    for (const at of /^\d+$/.test(pid) ? [`/proc/${pid}/environ`, `/proc/${pid}/cmdline`] : [])
      inspect(at, () => fs.readFileSync(at));
  // Bounded; never follows a link nor blocks on a FIFO.
  const readFile = (file: string, size: number) => {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
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
    for (const name of attempt(() => fs.readdirSync(dir)) ?? []) {
      if ((scan.truncated ||= scan.files >= 20_000 || Date.now() - started > 20_000)) return;
      const full = `${dir === '/' ? '' : dir}/${name}`;
      const st = attempt(() => fs.lstatSync(full));
      if (st?.isDirectory() && name !== 'node_modules' && name !== '.git') walk(full, depth + 1);
      else if (st?.isFile() && inspect(full, () => readFile(full, st.size))) scan.files++;
    }
  };
  for (const root of c.scanRoots) walk(root, 0);
  for (const s of c.sentinels) if (attempt(() => fs.lstatSync(s.hostPath))) note(s.id, s.hostPath);

  const interfaces = attempt(() =>
    fs
      .readFileSync('/proc/net/dev', 'utf8')
      .split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]!.trim())
      .filter(Boolean),
  );
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
      socket.once('error', (err: NodeJS.ErrnoException) => done('refused', err.code ?? String(err)));
      socket.once('connect', () => (request ? socket.write(request) : done('connected', 'connected')));
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (head.includes('\r\n')) done('connected', head.split('\r\n')[0]!);
      });
      socket.once('end', () => done('connected', head || 'closed without an answer'));
    });
  const dials: ProbeReport['dials'] = [];
  for (const [id, to] of Object.entries(c.dials)) {
    const [host, port] = to.split(':');
    const target = to.split(' ')[1]; // a request line for the egress proxy
    const request = `${to} HTTP/1.1\r\nHost: ${target?.startsWith('http') ? new URL(target).host : target}\r\n`;
    if (target)
      dials.push({ id, ...(await dial({ path: c.egressSocket }, `${request}Connection: close\r\n\r\n`)) });
    else if (host === '127.0.0.1' || interfaces?.every((name) => name === 'lo'))
      dials.push({ id, ...(await dial({ host, port: Number(port) })) });
    else
      dials.push({
        id,
        outcome: 'skipped',
        status: null,
        detail: 'not tried: the sandbox has a network interface',
      });
  }

  const shell = Object.fromEntries(
    Object.entries(c.shell).map(([id, cmd]) => {
      const { status: code, stdout } = run('sh', '-c', cmd);
      return [id, { code, out: (stdout ?? '').trim().slice(0, 500) }];
    }),
  );
  const ops: Record<string, (at: string, to: string) => unknown> = {
    rename: (at, to) => fs.renameSync(at, to),
    rmtree: (at) => fs.rmSync(at, { recursive: true, force: true }),
    rmdir: (at) => fs.rmdirSync(at),
    symlink: (at, to) => fs.symlinkSync(to, at),
    write: (at) => fs.writeFileSync(at, 'audit\n', { flag: 'wx' }),
    fifo: (at) => {
      if (run('mkfifo', at).status) throw new Error('mkfifo failed');
    },
  };
  const plants = c.plants.map(({ id, op, path, to = '' }) => {
    try {
      ops[op]!(path, to);
      return { id, ok: true, detail: 'done' };
    } catch (err) {
      return { id, ok: false, detail: (err as NodeJS.ErrnoException).code ?? String(err) };
    }
  });
  return { interfaces, dials, scan, hits, shell, plants };
}

// Run with `node --input-type=module -`: prints one marked report line.
export const probeSource = (config: ProbeConfig) =>
  [
    "import fs from 'node:fs'; import net from 'node:net'; import crypto from 'node:crypto';",
    "import childProcess from 'node:child_process';",
    'const __name = (fn) => fn;', // esbuild (tsx, vitest) wraps functions in __name(fn, "name")
    polyHash.toString(),
    hasSecret.toString(),
    `const report = await (${auditProbe.toString()})(${JSON.stringify(config)}, { fs, net, crypto, childProcess });`,
    `process.stdout.write('\\n' + ${JSON.stringify(REPORT_MARKER)} + JSON.stringify(report) + '\\n');`,
  ].join('\n');
