import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { SandboxRuntime, SandboxSpec } from '../sandbox/runtime.js';
import { probeReportSchema, REPORT_MARKER, type ProbeReport } from './types.js';

/**
 * The audit's side of one probe run: start the sandbox, feed it the probe, collect the report; plus
 * the two things the host watches meanwhile (a loopback canary, and for bwrap the cgroup limits
 * that the sandbox cannot see from inside).
 */

export class ProbeRunError extends Error {}

/** A loopback listener the sandbox must not reach, directly or through the proxy. */
export async function listenCanary(): Promise<{
  port: number;
  connections: () => number;
  close: () => Promise<void>;
}> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The sandbox's pids and memory limits as its cgroup on the host says (bwrap hides /sys). */
export function hostLimitsOf(pid: number): { pids: string | null; memory: string | null } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
  const read = (...parts: string[]) => {
    try {
      return fs.readFileSync(path.join('/sys/fs/cgroup', ...parts), 'utf8').trim();
    } catch {
      return null;
    }
  };
  const limits = { pids: null as string | null, memory: null as string | null };
  for (const line of text.trim().split('\n')) {
    const [, controllers = '', cgroup = ''] = line.split(':');
    const kinds = controllers.split(',');
    if (controllers === '') {
      limits.pids ??= read(cgroup, 'pids.max');
      limits.memory ??= read(cgroup, 'memory.max');
    }
    if (kinds.includes('pids')) limits.pids ??= read('pids', cgroup, 'pids.max');
    if (kinds.includes('memory')) limits.memory ??= read('memory', cgroup, 'memory.limit_in_bytes');
  }
  return limits;
}

export interface SandboxRun {
  stdout: string;
  stderr: string;
  code: number | null;
  hostLimits: ReturnType<typeof hostLimitsOf>;
}

export function runSandbox(
  runtime: SandboxRuntime,
  spec: SandboxSpec,
  source: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<SandboxRun> {
  const proc = runtime.spawn(spec);
  // bwrap puts itself in the sandbox's cgroup before it starts anything: read it now.
  const hostLimits = runtime.kind === 'bwrap' && proc.pid ? hostLimitsOf(proc.pid) : null;
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    const stop = () => void runtime.stop(spec.name).catch(() => undefined);
    const timer = setTimeout(stop, timeoutMs);
    signal?.addEventListener('abort', stop, { once: true });
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (stdout.length < 8 * 2 ** 20) stdout += chunk.toString('utf8');
    });
    proc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    proc.stdin?.on('error', () => undefined); // a sandbox that died at once; its exit says why
    proc.stdin?.end(source);
    proc.once('error', (err) => (stderr += `\n${err.message}`));
    proc.once('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      resolve({ stdout, stderr, code, hostLimits });
    });
  });
}

export function parseReport(run: SandboxRun): ProbeReport {
  const line = run.stdout.split('\n').find((l) => l.startsWith(REPORT_MARKER));
  let parsed: unknown;
  try {
    parsed = line ? JSON.parse(line.slice(REPORT_MARKER.length)) : undefined;
  } catch {
    parsed = undefined;
  }
  const report = probeReportSchema.safeParse(parsed);
  if (report.success) return report.data;
  const why = line ? `an invalid report (${report.error.issues[0]?.path.join('.')})` : 'no report';
  const tail = run.stderr.trim().split('\n').slice(-5).join('\n');
  throw new ProbeRunError(`the probe gave ${why}; sandbox exit code ${run.code}${tail ? `:\n${tail}` : ''}`);
}
