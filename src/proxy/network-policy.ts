import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';
import { readPolicyFile, whenChanged } from '../policy/group-policy.js';

const list = (regex: RegExp, message: string) =>
  z.array(z.string().trim().toLowerCase().regex(regex, message)).optional();
const domains = list(/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/, 'must be like example.com or *.example.com');
// A group's entry overrides `default`, except `deny`, which adds up.
const rule = z.strictObject({
  allow: domains,
  deny: domains,
  noNetwork: z.boolean().optional(),
  maxConnections: z.number().int().min(1).max(4096).optional(),
});
const fileSchema = z.strictObject({
  default: rule.optional(),
  groups: z.record(z.string(), rule).optional(),
  allowPrivateTargets: list(/^(\[[0-9a-f:.]+\]|[a-z0-9._-]+):\d{1,5}$/, 'must be host:port'),
});

export type LoadedNetworkPolicy = { file: z.infer<typeof fileSchema>; problem?: string };
export type GroupNetworkPolicy = ReturnType<typeof policyForGroup>;

export const networkPolicyPath = (configDir: string) => path.join(configDir, 'network-policy.json');

// An invalid file fails closed.
export function loadNetworkPolicy(configDir: string): LoadedNetworkPolicy {
  const read = readPolicyFile(networkPolicyPath(configDir), fileSchema);
  return typeof read === 'string'
    ? { file: { default: { noNetwork: true } }, problem: read }
    : { file: read ?? {} };
}

export const createNetworkPolicyReader = (configDir: string) =>
  whenChanged(networkPolicyPath(configDir), () => {
    const loaded = loadNetworkPolicy(configDir);
    if (loaded.problem) logger.error({ problem: loaded.problem }, 'network policy invalid: egress refused');
    return loaded;
  });

export function policyForGroup({ file, problem }: LoadedNetworkPolicy, folder: string) {
  const { default: base = {}, groups, allowPrivateTargets = [] } = file;
  const own = groups?.[folder] ?? {};
  const noNetwork = own.noNetwork ?? base.noNetwork ?? false;
  return {
    allow: own.allow ?? base.allow,
    deny: [...(base.deny ?? []), ...(own.deny ?? [])],
    noNetwork,
    noNetworkReason: !noNetwork
      ? undefined
      : problem
        ? 'network-policy.json is invalid (see the host log), so all egress is refused'
        : 'the network policy gives this group no network',
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
