import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';

/**
 * The optional egress policy, `$NANOCLAW_CONFIG_DIR/network-policy.json`:
 *
 *   {
 *     "default": { "allow"?: ["example.com", "*.example.com"], "deny"?: [...], "noNetwork"?: false,
 *                  "maxConnections"?: 64 },
 *     "groups": { "<folder>": { same fields } },
 *     "allowPrivateTargets"?: ["127.0.0.1:18080", "nas.lan:8080"]
 *   }
 *
 * Missing file = no domain rules (the address guard still applies). An unreadable or invalid file
 * fails closed: every group loses the network until it is fixed, because a typo in a security file
 * must not silently open what it meant to close.
 *
 * A group's entry overrides `allow`, `noNetwork` and `maxConnections` of the default and adds to its
 * `deny`. The same rules also bound the model's server-side tools (web search, code execution, MCP
 * connector) in the model proxy, see server-tools.ts.
 * `*.example.com` matches subdomains of example.com, not example.com itself.
 */

const domainPattern = z
  .string()
  .trim()
  .toLowerCase()
  .regex(
    /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/,
    'must be a domain like example.com or *.example.com (no scheme, port or path)',
  );

const privateTarget = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(\[[0-9a-f:.]+\]|[a-z0-9._-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:18080');

const ruleSchema = z.strictObject({
  allow: z.array(domainPattern).optional(),
  deny: z.array(domainPattern).optional(),
  noNetwork: z.boolean().optional(),
  /** Open egress connections (HTTP requests and tunnels) one group may hold at once. */
  maxConnections: z.number().int().min(1).max(4096).optional(),
});

const policyFileSchema = z.strictObject({
  default: ruleSchema.optional(),
  groups: z.record(z.string(), ruleSchema).optional(),
  allowPrivateTargets: z.array(privateTarget).optional(),
});

export type NetworkPolicyFile = z.infer<typeof policyFileSchema>;

export interface LoadedNetworkPolicy {
  source: 'missing' | 'file' | 'invalid';
  file: NetworkPolicyFile;
  /** Why the file was rejected (source 'invalid'). */
  problem?: string;
}

/** The rules that apply to one group's egress, after merging default and group entries. */
export interface GroupNetworkPolicy {
  /** undefined = any domain (subject to deny and the address guard). */
  allow?: string[];
  deny: string[];
  noNetwork: boolean;
  noNetworkReason?: string;
  /** Normalised `host:port` targets that may be reached despite the address guard. */
  allowPrivateTargets: string[];
  /** undefined = the egress proxy's default. */
  maxConnections?: number;
}

export function networkPolicyPath(configDir: string): string {
  return path.join(configDir, 'network-policy.json');
}

export function loadNetworkPolicy(configDir: string): LoadedNetworkPolicy {
  const file = networkPolicyPath(configDir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { source: 'missing', file: {} };
    return invalid(`cannot read ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return invalid(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = policyFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    return invalid(`${file}: ${issues.join('; ')}`);
  }
  return { source: 'file', file: parsed.data };
}

function invalid(problem: string): LoadedNetworkPolicy {
  return { source: 'invalid', file: { default: { noNetwork: true } }, problem };
}

/**
 * Returns a function giving the current policy. It re-reads the file only when its mtime, size or
 * inode changed, so edits apply to the next connection without a restart, and an invalid file is
 * logged once per change rather than once per connection.
 */
export function createNetworkPolicyReader(configDir: string): () => LoadedNetworkPolicy {
  const file = networkPolicyPath(configDir);
  let signature: string | undefined;
  let current: LoadedNetworkPolicy | undefined;
  return () => {
    let next: string;
    try {
      const st = fs.statSync(file);
      next = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      next = `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
    }
    if (current && next === signature) return current;
    signature = next;
    current = loadNetworkPolicy(configDir);
    if (current.source === 'invalid') {
      logger.error({ problem: current.problem }, 'network policy invalid: all egress refused until fixed');
    } else {
      logger.info({ file, source: current.source }, 'network policy loaded');
    }
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
    allowPrivateTargets: (loaded.file.allowPrivateTargets ?? []).map(normalizeTarget),
    maxConnections: own.maxConnections ?? base.maxConnections,
  };
}

/** Lower case, no trailing dot, no IPv6 brackets: the form every comparison uses. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

function normalizeTarget(target: string): string {
  const colon = target.lastIndexOf(':');
  return `${normalizeHost(target.slice(0, colon))}:${Number(target.slice(colon + 1))}`;
}

export function matchesDomain(host: string, pattern: string): boolean {
  const h = normalizeHost(host);
  const p = normalizeHost(pattern);
  if (p.startsWith('*.')) return h.endsWith(p.slice(1));
  return h === p;
}

export type PolicyDecision =
  | { allowed: false; reason: string }
  /** explicitTarget: listed in allowPrivateTargets, so the address guard is relaxed for it. */
  | { allowed: true; explicitTarget: boolean };

/** The name-based part of the decision; the address guard runs afterwards on resolved addresses. */
export function decideByPolicy(host: string, port: number, policy: GroupNetworkPolicy): PolicyDecision {
  const h = normalizeHost(host);
  if (policy.noNetwork)
    return { allowed: false, reason: policy.noNetworkReason ?? 'network access disabled' };
  const denied = policy.deny.find((p) => matchesDomain(h, p));
  if (denied) return { allowed: false, reason: `${h} is denied by the network policy (${denied})` };
  if (policy.allowPrivateTargets.includes(`${h}:${port}`)) return { allowed: true, explicitTarget: true };
  if (policy.allow && !policy.allow.some((p) => matchesDomain(h, p))) {
    return { allowed: false, reason: `${h} is not in this group's allow list` };
  }
  return { allowed: true, explicitTarget: false };
}
