import { z } from 'zod';

/**
 * What the host tells the probe (embedded in the probe's source, which arrives on stdin) and what
 * the probe reports back (one marked line on stdout). The probe is the audit's own code, but its
 * report crosses the sandbox boundary, so the host parses it with zod like any other input.
 */

/** A secret's fingerprint: enough to recognise it, not enough to recover it (see fingerprint.ts). */
export interface Fingerprint {
  len: number;
  roll: number;
  sha256: string;
}

/** One thing the probe does to the filesystem, in order. `expect: 'fail'` marks what must be refused. */
export interface PlantStep {
  id: string;
  op: 'rename' | 'rmtree' | 'rmdir' | 'symlink' | 'fifo' | 'write';
  path: string;
  /** rename: the new name; symlink: where the link points (a host path the host must not touch). */
  to?: string;
  expect: 'ok' | 'fail';
}

export interface ProbeConfig {
  expectedUid: number;
  /** Files the host wrote where no sandbox may see them: tested at their host path and by content. */
  sentinels: { id: string; hostPath: string; token: string }[];
  secrets: Fingerprint[];
  /** Walked in order, bounded by `limits`; links are never followed and only regular files read. */
  scanRoots: string[];
  limits: { maxFiles: number; maxFileBytes: number; maxTotalBytes: number; budgetMs: number };
  /** Direct TCP connections that must fail. Non-loopback ones are tried only when `lo` is alone. */
  direct: { id: string; host: string; port: number }[];
  egressSocket: string;
  /** Raw requests to the egress proxy that it must refuse: `CONNECT host:port` or `GET url`. */
  egress: { id: string; method: 'CONNECT' | 'GET'; target: string }[];
  projectPath: string;
  plants: PlantStep[];
}

export const REPORT_MARKER = '---NANOCLAW_AUDIT_REPORT---';

const where = z.array(z.string()).max(50);

export const probeReportSchema = z.object({
  uid: z.number(),
  status: z.object({
    capEff: z.string().nullable(),
    capPrm: z.string().nullable(),
    noNewPrivs: z.string().nullable(),
    seccomp: z.string().nullable(),
  }),
  userns: z.object({ result: z.enum(['refused', 'allowed', 'unavailable']), detail: z.string() }),
  rootMount: z.string().nullable(),
  cgroup: z.object({ pids: z.string().nullable(), memory: z.string().nullable() }),
  runtimeSockets: z.array(z.string()),
  interfaces: z.array(z.string()).nullable(),
  direct: z.array(
    z.object({
      id: z.string(),
      outcome: z.enum(['connected', 'refused', 'timeout', 'skipped']),
      detail: z.string(),
    }),
  ),
  egress: z.array(z.object({ id: z.string(), status: z.number().nullable(), detail: z.string() })),
  scan: z.object({
    files: z.number(),
    bytes: z.number(),
    processes: z.number(),
    unreadable: z.number(),
    truncated: z.boolean(),
  }),
  secretHits: z.array(z.object({ index: z.number(), where })),
  sentinelHits: z.array(z.object({ id: z.string(), where })),
  /** Values of credential-named variables in any process environment, for the host to compare. */
  credentials: z.array(z.object({ where: z.string(), name: z.string(), value: z.string() })).max(200),
  project: z.object({
    visible: z.boolean(),
    env: z.enum(['absent', 'empty', 'content']),
    store: z.array(z.string()).nullable(),
    data: z.array(z.string()).nullable(),
  }),
  plants: z.array(z.object({ id: z.string(), ok: z.boolean(), detail: z.string() })),
});

export type ProbeReport = z.infer<typeof probeReportSchema>;
