import type childProcess from 'node:child_process';
import crypto from 'node:crypto';
import type fs from 'node:fs';
import type net from 'node:net';

// auditProbe and hasSecret run in the sandbox as source text: no imported names.
export type PlantStep = { id: string; op: string; path: string; to?: string };
export type ProbeConfig = {
  sentinels: { id: string; hostPath: string; token: string }[];
  secrets: string[]; // SHA-256
  scanRoots: string[];
  dials: Record<string, string>; // `host:port`, or a request line for the egress proxy
  egressSocket: string;
  shell: Record<string, string>;
  plants: PlantStep[];
};
export type ProbeReport = Awaited<ReturnType<typeof auditProbe>>;
export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';

// Secrets reach the probe as SHA-256 only; it hashes each run of 16+ [\w-] characters it reads.
export function hasSecret(text: string, hashes: string[], sha256: (s: string) => string) {
  return (text.match(/[\w-]{16,}/g) ?? []).some((t) => hashes.includes(sha256(t)));
}

export const sha256Hex = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

type Deps = { fs: typeof fs; net: typeof net; crypto: typeof crypto; childProcess: typeof childProcess };

// Looks before it plants.
export async function auditProbe(c: ProbeConfig, { fs, net, crypto, childProcess }: Deps) {
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
  let files = 0;
  const hits: Record<string, string[]> = {};
  const note = (id: string, at: string) => (hits[id] ??= []).length < 50 && hits[id].push(at);
  const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
  const buf = Buffer.alloc(4 << 20);
  const inspect = (at: string) =>
    attempt(() => {
      const fd = fs.openSync(at, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      const got = buf.subarray(0, attempt(() => fs.readSync(fd, buf, 0, buf.length, 0)) ?? 0);
      fs.closeSync(fd);
      const text = got.toString('latin1');
      if (hasSecret(text, c.secrets, sha256)) note('apiKey', at);
      for (const s of c.sentinels) if (text.includes(s.token)) note(s.id, at);
      return true;
    });
  for (const pid of attempt(() => fs.readdirSync('/proc')) ?? [])
    if (/^\d+$/.test(pid)) for (const f of ['environ', 'cmdline']) inspect(`/proc/${pid}/${f}`);
  const walk = (dir: string): void => {
    for (const e of attempt(() => fs.readdirSync(dir, { withFileTypes: true })) ?? []) {
      if (files >= 20_000 || Date.now() - started > 20_000) return;
      const at = `${dir}/${e.name}`;
      if (e.isDirectory() && e.name !== 'node_modules' && e.name !== '.git') walk(at);
      else if (e.isFile() && inspect(at)) files++;
    }
  };
  c.scanRoots.forEach(walk);
  for (const s of c.sentinels) if (attempt(() => fs.lstatSync(s.hostPath))) note(s.id, s.hostPath);

  const interfaces = attempt(() => fs.readFileSync('/proc/net/dev', 'utf8').match(/[^\s:]+(?=:)/g));
  const dial = (to: net.NetConnectOpts, request?: string) =>
    new Promise<{ outcome: string; status: number | null; detail: string }>((resolve) => {
      const socket = net.connect(to);
      let head = '';
      const done = (outcome: string, detail: string) => {
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
    });
  const dials = await Promise.all(
    Object.entries(c.dials).map(async ([id, to]) => {
      const [host, port] = to.split(':');
      const egress = to.includes(' ') && dial({ path: c.egressSocket }, `${to} HTTP/1.0\r\n\r\n`);
      return { id, ...(await (egress || dial({ host, port: +port! }))) };
    }),
  );

  const shell = Object.fromEntries(
    Object.entries(c.shell).map(([id, cmd]) => {
      const { status: code, stdout } = run('sh', '-c', cmd);
      return [id, { code, out: (stdout ?? '').trim().slice(0, 500) }];
    }),
  );
  const ops: Record<string, (at: string, to: string) => unknown> = {
    rename: (at, to) => fs.renameSync(at, to),
    rm: (at) => fs.rmSync(at, { recursive: true }),
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
  return { interfaces, dials, hits, shell, plants };
}

export const probeSource = (config: ProbeConfig) =>
  [
    "import fs from 'node:fs'; import net from 'node:net'; import crypto from 'node:crypto';",
    "import childProcess from 'node:child_process';",
    'const __name = (fn) => fn;', // esbuild's wrapper
    hasSecret.toString(),
    `const report = await (${auditProbe.toString()})(${JSON.stringify(config)}, { fs, net, crypto, childProcess });`,
    `process.stdout.write(${JSON.stringify(REPORT_MARKER)} + JSON.stringify(report));`,
  ].join('\n');
