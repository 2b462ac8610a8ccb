import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';
import { readPolicyFile, whenChanged } from '../policy/group-policy.js';

const list = (regex: RegExp, message: string) =>
  z.array(z.string().trim().toLowerCase().regex(regex, message)).optional();
const domains = list(
  /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/,
  'must be like example.com or *.example.com, no scheme or path',
);
// A group's entry overrides `allow`, `noNetwork` and `maxConnections` of `default` and adds to its `deny`.
const rule = z.strictObject({
  allow: domains,
  deny: domains,
  noNetwork: z.boolean().optional(),
  maxConnections: z.number().int().min(1).max(4096).optional(),
});
const fileSchema = z.strictObject({
  default: rule.optional(),
  groups: z.record(z.string(), rule).optional(),
  allowPrivateTargets: list(
    /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+):\d{1,5}$/,
    'must be host:port, e.g. 127.0.0.1:18080',
  ),
});

export type LoadedNetworkPolicy = {
  source: 'missing' | 'file' | 'invalid';
  file: z.infer<typeof fileSchema>;
  problem?: string;
};

export interface GroupNetworkPolicy {
  allow?: string[];
  deny: string[];
  noNetwork: boolean;
  noNetworkReason?: string;
  allowPrivateTargets: string[];
  maxConnections?: number;
}

export const networkPolicyPath = (configDir: string) => path.join(configDir, 'network-policy.json');

// An invalid file fails closed: a typo in a security file must not open what it meant to close.
export function loadNetworkPolicy(configDir: string): LoadedNetworkPolicy {
  const read = readPolicyFile(networkPolicyPath(configDir), fileSchema);
  if (typeof read === 'string')
    return { source: 'invalid', file: { default: { noNetwork: true } }, problem: read };
  return read ? { source: 'file', file: read } : { source: 'missing', file: {} };
}

export function createNetworkPolicyReader(configDir: string): () => LoadedNetworkPolicy {
  const file = networkPolicyPath(configDir);
  return whenChanged(file, () => {
    const loaded = loadNetworkPolicy(configDir);
    if (loaded.problem)
      logger.error({ problem: loaded.problem }, 'network policy invalid: all egress refused until fixed');
    else logger.info({ file, source: loaded.source }, 'network policy loaded');
    return loaded;
  });
}

export function policyForGroup({ source, file }: LoadedNetworkPolicy, folder: string): GroupNetworkPolicy {
  const { default: base = {}, groups, allowPrivateTargets = [] } = file;
  const own = groups?.[folder] ?? {};
  const noNetwork = own.noNetwork ?? base.noNetwork ?? false;
  return {
    allow: own.allow ?? base.allow,
    deny: [...(base.deny ?? []), ...(own.deny ?? [])],
    noNetwork,
    noNetworkReason: !noNetwork
      ? undefined
      : source === 'invalid'
        ? 'the network policy file is invalid (see the host log); all egress is refused until it is fixed'
        : 'network access is disabled for this group by the network policy',
    allowPrivateTargets: allowPrivateTargets.map((t) =>
      t.replace(/^(.*):(\d+)$/, (_, host: string, port: string) => `${normalizeHost(host)}:${Number(port)}`),
    ),
    maxConnections: own.maxConnections ?? base.maxConnections,
  };
}

export const normalizeHost = (host: string) => host.toLowerCase().replace(/^\[(.*)\]$|\.$/g, '$1');

export function matchesDomain(host: string, pattern: string): boolean {
  const [h, p] = [normalizeHost(host), normalizeHost(pattern)];
  return p.startsWith('*.') ? h.endsWith(p.slice(1)) : h === p;
}
