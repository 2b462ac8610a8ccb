import type childProcess from 'node:child_process';
import crypto from 'node:crypto';
import type fs from 'node:fs';
import type net from 'node:net';
import { z } from 'zod';

// auditProbe and hasSecret run in the sandbox as source text (probeSource): they may use no imported names.

/** A secret's length, 31-bit rolling hash and SHA-256: enough to find it, not to recover it. */
type Fingerprint = { len: number; roll: number; sha256: string };
export type PlantStep = { id: string; op: string; path: string; to?: string; expect: 'ok' | 'fail' };
export interface ProbeConfig {
  sentinels: { id: string; hostPath: string; token: string }[];
  secrets: Fingerprint[];
  scanRoots: string[];
  /** id: host:port; beyond loopback tried only when `lo` is alone. */
  direct: Record<string, string>;
  egressSocket: string;
  /** id: target; an `http://` target is a GET, else a CONNECT. */
  egress: Record<string, string>;
  /** id: a command for sh -c. */
  shell: Record<string, string>;
  plants: PlantStep[];
}

export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';
const results = <T extends z.ZodRawShape>(shape: T) =>
  z.array(z.object({ id: z.string(), detail: z.string(), ...shape }));
/** Our probe, but its report crosses the boundary: parsed like any other input. */
export const probeReportSchema = z.object({
  interfaces: z.array(z.string()).nullable(),
  direct: results({ outcome: z.enum(['connected', 'refused', 'timeout', 'skipped']) }),
  egress: results({ status: z.number().nullable() }),
  scan: z.object({ files: z.number(), truncated: z.boolean() }),
  /** Where each sentinel id, and `apiKey`, was seen. */
  hits: z.record(z.string(), z.array(z.string()).max(50)),
  shell: z.record(z.string(), z.object({ code: z.number().nullable(), out: z.string() })),
  plants: results({ ok: z.boolean() }),
});
export type ProbeReport = z.infer<typeof probeReportSchema>;

function polyHash(bytes: Uint8Array, len: number) {
  let h = 0;
  for (let i = 0; i < len; i++) h = (h * 257 + bytes[i]!) % 2147483647;
  return h;
}

/** Whether a fingerprinted secret occurs in `buf`; SHA-256 only where the rolling hash matches. */
export function hasSecret(buf: Uint8Array, fps: Fingerprint[], sha256: (b: Uint8Array) => string) {
  const mod = 2147483647;
  for (const len of new Set(fps.map((f) => f.len))) {
    if (!len || len > buf.length) continue;
    let pow = 1; // the weight of the byte leaving the window
    for (let i = 1; i < len; i++) pow = (pow * 257) % mod;
    let h = polyHash(buf, len);
    for (let i = 0; ; i++) {
      if (fps.some((f) => f.len === len && f.roll === h && sha256(buf.subarray(i, i + len)) === f.sha256))
        return true;
      if (i + len >= buf.length) break;
      h = ((h - ((buf[i]! * pow) % mod) + mod) * 257 + buf[i + len]!) % mod;
    }
  }
  return false;
}

export const sha256Hex = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
export function fingerprint(secret: string): Fingerprint {
  const bytes = Buffer.from(secret);
  return { len: bytes.length, roll: polyHash(bytes, bytes.length), sha256: sha256Hex(bytes) };
}

type Deps = { fs: typeof fs; net: typeof net; crypto: typeof crypto; childProcess: typeof childProcess };

/** Looks before it plants, so its own plants never show in what it saw. */
export async function auditProbe(
  config: ProbeConfig,
  { fs, net, crypto, childProcess }: Deps,
): Promise<ProbeReport> {
  const attempt = <T>(fn: () => T) => {
    try {
      return fn();
    } catch {
      return null;
    }
  };
  const read = (file: string) => attempt(() => fs.readFileSync(file, 'utf8'));
  const list = (dir: string) => attempt(() => fs.readdirSync(dir));
  const errText = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);
  const run = (cmd: string, ...args: string[]) =>
    childProcess.spawnSync(cmd, args, { timeout: 5000, encoding: 'utf8' });

  const started = Date.now();
  const scan = { files: 0, truncated: false };
  const hits: Record<string, string[]> = {};
  const note = (id: string, at: string) => (hits[id] ??= []).length < 50 && hits[id].push(at);
  const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
  const inspect = (buf: Buffer | null, at: string) => {
    if (buf && hasSecret(buf, config.secrets, sha256)) note('apiKey', at);
    for (const s of config.sentinels) if (buf?.includes(s.token)) note(s.id, at);
  };
  for (const pid of list('/proc')?.filter((d) => /^\d+$/.test(d)) ?? [])
    for (const at of [`/proc/${pid}/environ`, `/proc/${pid}/cmdline`])
      inspect(
        attempt(() => fs.readFileSync(at)),
        at,
      );
  // Bounded; links are never followed, FIFOs never opened, only regular files read.
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
    for (const name of list(dir) ?? []) {
      scan.truncated ||= scan.files >= 20_000 || Date.now() - started > 20_000;
      const full = `${dir === '/' ? '' : dir}/${name}`;
      const st = scan.truncated ? null : attempt(() => fs.lstatSync(full));
      if (st?.isDirectory() && name !== 'node_modules' && name !== '.git') walk(full, depth + 1);
      const buf = st?.isFile() ? attempt(() => readFile(full, st.size)) : null;
      inspect(buf, full);
      if (buf) scan.files++;
    }
  };
  for (const root of config.scanRoots) walk(root, 0);
  for (const s of config.sentinels) if (attempt(() => fs.lstatSync(s.hostPath))) note(s.id, s.hostPath);

  const interfaces =
    read('/proc/net/dev')
      ?.split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]!.trim())
      .filter(Boolean) ?? null;
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
        if (head.includes('\r\n')) done('connected', head.split('\r\n')[0]!);
      });
      socket.once('end', () => done('connected', head || 'closed without an answer'));
    });
  const direct: ProbeReport['direct'] = [];
  for (const [id, to] of Object.entries(config.direct)) {
    const [host, port] = to.split(':');
    direct.push(
      host === '127.0.0.1' || interfaces?.every((name) => name === 'lo')
        ? { id, ...(await dial({ host, port: Number(port) })) }
        : { id, outcome: 'skipped', detail: 'not tried: the sandbox has a network interface' },
    );
  }
  const egress: ProbeReport['egress'] = [];
  for (const [id, target] of Object.entries(config.egress)) {
    const url = target.startsWith('http://') ? new URL(target) : null;
    const head = `${url ? 'GET' : 'CONNECT'} ${target} HTTP/1.1\r\nHost: ${url?.host ?? target}\r\n`;
    egress.push({ id, ...(await dial({ path: config.egressSocket }, `${head}Connection: close\r\n\r\n`)) });
  }

  const shell = Object.fromEntries(
    Object.entries(config.shell).map(([id, cmd]) => {
      const { status: code, stdout } = run('sh', '-c', cmd);
      return [id, { code, out: (stdout ?? '').trim().slice(0, 500) }];
    }),
  );
  const plants = config.plants.map(({ id, op, path, to = '' }) => {
    try {
      if (op === 'rename') fs.renameSync(path, to);
      else if (op === 'rmtree') fs.rmSync(path, { recursive: true, force: true });
      else if (op === 'rmdir') fs.rmdirSync(path);
      else if (op === 'symlink') fs.symlinkSync(to, path);
      else if (op === 'write') fs.writeFileSync(path, 'audit\n', { flag: 'wx' });
      else if (run('mkfifo', path).status !== 0) throw new Error('mkfifo failed');
      return { id, ok: true, detail: 'done' };
    } catch (err) {
      return { id, ok: false, detail: errText(err) };
    }
  });

  return { interfaces, direct, egress, scan, hits, shell, plants };
}

/** The module the sandbox runs with `node --input-type=module -`: it prints one marked report line. */
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
