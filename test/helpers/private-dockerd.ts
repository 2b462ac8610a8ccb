import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { vi } from 'vitest';

/**
 * A second Docker daemon of the test's own, so a test can stop and kill "the runtime" without
 * touching the shared daemon other suites use. No bridge, no iptables: sandboxes run with
 * --network none anyway. Everything lives under one short temp dir (unix socket paths are short).
 */
export class PrivateDockerd {
  readonly dir: string;
  readonly host: string;
  private proc: ChildProcess | null = null;
  private logFd: number | null = null;

  constructor() {
    this.dir = fs.mkdtempSync('/tmp/ncd-');
    this.host = `unix://${path.join(this.dir, 'docker.sock')}`;
    fs.writeFileSync(path.join(this.dir, 'daemon.json'), '{}');
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Runs the docker CLI against this daemon. */
  docker(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync('docker', args, {
      env: { ...process.env, DOCKER_HOST: this.host },
      input,
      maxBuffer: 256 * 1024 * 1024,
    });
    return { status: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  async start(): Promise<void> {
    if (this.running()) return;
    this.logFd = fs.openSync(path.join(this.dir, 'dockerd.log'), 'a');
    this.proc = spawn(
      'dockerd',
      [
        // The machine's daemon.json sets the same options; an empty file keeps them from clashing.
        '--config-file',
        path.join(this.dir, 'daemon.json'),
        '--host',
        this.host,
        '--data-root',
        path.join(this.dir, 'root'),
        '--exec-root',
        path.join(this.dir, 'exec'),
        '--pidfile',
        path.join(this.dir, 'docker.pid'),
        '--bridge',
        'none',
        '--iptables=false',
        '--ip-forward=false',
        '--ip-masq=false',
      ],
      { stdio: ['ignore', this.logFd, this.logFd] },
    );
    const proc = this.proc;
    await vi.waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`dockerd exited:\n${this.logTail()}`);
        if (this.docker(['info', '--format', '{{.ID}}']).status !== 0) throw new Error('dockerd not ready');
      },
      { timeout: 60_000, interval: 200 },
    );
  }

  running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGKILL: the daemon dies at once; its containers are cleaned up when it starts again. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  private async signal(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<boolean> {
    const proc = this.proc;
    if (!proc || !this.running()) return true;
    const exited = new Promise<boolean>((resolve) => proc.once('exit', () => resolve(true)));
    proc.kill(signal);
    const late = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs));
    return Promise.race([exited, late]);
  }

  /** Copies an image from the shared daemon into this one. */
  loadImage(image: string): void {
    const saved = spawnSync('docker', ['save', image], { maxBuffer: 256 * 1024 * 1024 });
    if (saved.status !== 0) throw new Error(`docker save ${image} failed: ${String(saved.stderr)}`);
    const loaded = this.docker(['load'], saved.stdout);
    if (loaded.status !== 0) throw new Error(`docker load failed: ${loaded.stderr}`);
  }

  logTail(lines = 20): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'dockerd.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /**
   * Stops the daemon (gracefully, then by force), then whatever it left behind: processes of its
   * own containerd (found by this daemon's unique directory in their command line, killed by pid),
   * mounts under its directory, and the directory itself.
   */
  async destroy(): Promise<void> {
    if (!(await this.signal('SIGTERM'))) await this.signal('SIGKILL');
    if (this.logFd !== null) fs.closeSync(this.logFd);
    this.logFd = null;
    for (const pid of this.leftoverPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const mounts = fs
      .readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((target) => target.startsWith(`${this.dir}/`))
      .sort((a, b) => b.length - a.length);
    for (const target of mounts) spawnSync('umount', ['-l', target]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Pids of processes whose command line names this daemon's directory (containerd, shims). */
  leftoverPids(): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      try {
        const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (cmdline.includes(this.dir)) pids.push(Number(entry));
      } catch {
        /* exited meanwhile */
      }
    }
    return pids;
  }
}
