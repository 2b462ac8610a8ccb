import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';
import { zodProblems } from '../util/zod-problems.js';

/**
 * `$NANOCLAW_CONFIG_DIR/network-policy.json` (optional). A group's entry overrides `allow`,
 * `noNetwork` and `maxConnections` of `default` and adds to its `deny`. An unreadable or invalid
 * file fails closed: a typo in a security file must not open what it meant to close.
 */

const lowerCase = (regex: RegExp, message: string) => z.string().trim().toLowerCase().regex(regex, message);
const domainPattern = lowerCase(
  /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/,
  'must be a domain like example.com or *.example.com (no scheme, port or path)',
);
const hostPort = lowerCase(
  /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+):\d{1,5}$/,
  'must be host:port, e.g. 127.0.0.1:18080',
);

const ruleSchema = z.strictObject({
  allow: z.array(domainPattern).optional(),
  deny: z.array(domainPattern).optional(),
  noNetwork: z.boolean().optional(),
  maxConnections: z.number().int().min(1).max(4096).optional(),
});

const policyFileSchema = z.strictObject({
  default: ruleSchema.optional(),
  groups: z.record(z.string(), ruleSchema).optional(),
  allowPrivateTargets: z.array(hostPort).optional(),
});

export interface LoadedNetworkPolicy {
  source: 'missing' | 'file' | 'invalid';
  file: z.infer<typeof policyFileSchema>;
  problem?: string;
}

export interface GroupNetworkPolicy {
  allow?: string[];
  deny: string[];
  noNetwork: boolean;
  noNetworkReason?: string;
  allowPrivateTargets: string[];
  maxConnections?: number;
}

export const networkPolicyPath = (configDir: string) => path.join(configDir, 'network-policy.json');

export function loadNetworkPolicy(configDir: string): LoadedNetworkPolicy {
  const file = networkPolicyPath(configDir);
  const invalid = (problem: string): LoadedNetworkPolicy => ({
    source: 'invalid',
    file: { default: { noNetwork: true } },
    problem,
  });
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { source: 'missing', file: {} };
    return invalid(`cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = policyFileSchema.safeParse(json);
  if (!parsed.success) return invalid(`${file}: ${zodProblems(parsed.error)}`);
  return { source: 'file', file: parsed.data };
}

/** Re-reads the file when it changed, so an invalid file is logged once. */
export function createNetworkPolicyReader(configDir: string): () => LoadedNetworkPolicy {
  const file = networkPolicyPath(configDir);
  let signature: string | undefined;
  let current: LoadedNetworkPolicy;
  return () => {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    const next = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'missing';
    if (next === signature) return current;
    signature = next;
    current = loadNetworkPolicy(configDir);
    if (current.source === 'invalid') {
      logger.error({ problem: current.problem }, 'network policy invalid: all egress refused until fixed');
    } else logger.info({ file, source: current.source }, 'network policy loaded');
    return current;
  };
}

export function policyForGroup(loaded: LoadedNetworkPolicy, folder: string): GroupNetworkPolicy {
  const base = loaded.file.default ?? {};
  const own = loaded.file.groups?.[folder] ?? {};
  const noNetwork = own.noNetwork ?? base.noNetwork ?? false;
  return {
    allow: own.allow ?? base.allow,
    deny: [...(base.deny ?? []), ...(own.deny ?? [])],
    noNetwork,
    noNetworkReason: !noNetwork
      ? undefined
      : loaded.source === 'invalid'
        ? 'the network policy file is invalid (see the host log); all egress is refused until it is fixed'
        : 'network access is disabled for this group by the network policy',
    allowPrivateTargets: (loaded.file.allowPrivateTargets ?? []).map((target) => {
      const colon = target.lastIndexOf(':');
      return `${normalizeHost(target.slice(0, colon))}:${Number(target.slice(colon + 1))}`;
    }),
    maxConnections: own.maxConnections ?? base.maxConnections,
  };
}

/** Lower case, no IPv6 brackets, no trailing dot. */
export const normalizeHost = (host: string) => host.toLowerCase().replace(/^\[(.*)\]$|\.$/g, '$1');

export function matchesDomain(host: string, pattern: string): boolean {
  const h = normalizeHost(host);
  const p = normalizeHost(pattern);
  return p.startsWith('*.') ? h.endsWith(p.slice(1)) : h === p;
}

export function decideByPolicy(
  host: string,
  port: number,
  policy: GroupNetworkPolicy,
): { allowed: false; reason: string } | { allowed: true; explicitTarget: boolean } {
  const h = normalizeHost(host);
  const refuse = (reason: string) => ({ allowed: false, reason }) as const;
  if (policy.noNetwork) return refuse(policy.noNetworkReason ?? 'network access disabled');
  const denied = policy.deny.find((p) => matchesDomain(h, p));
  if (denied) return refuse(`${h} is denied by the network policy (${denied})`);
  const explicitTarget = policy.allowPrivateTargets.includes(`${h}:${port}`);
  if (!explicitTarget && policy.allow && !policy.allow.some((p) => matchesDomain(h, p))) {
    return refuse(`${h} is not in this group's allow list`);
  }
  return { allowed: true, explicitTarget };
}
