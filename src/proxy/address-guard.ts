import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { decideByPolicy, normalizeHost, type GroupNetworkPolicy } from './network-policy.js';

/**
 * The address guard: a sandbox may reach the public internet through the egress proxy, never the
 * host, the LAN or a cloud metadata service. The check runs on every resolved address (so a public
 * name pointing at 127.0.0.1 is refused) and the proxy then connects to the address it checked,
 * never re-resolving, so DNS rebinding between check and connect cannot slip through.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type LookupFn = (host: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupFn = async (host) => {
  const results = await dns.promises.lookup(host, { all: true, verbatim: true });
  return results.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
};

/**
 * Every address bound on the host's interfaces. Public ones matter most: a service listening on
 * 0.0.0.0 is reachable through the host's public address, which no range table can know.
 */
export const systemInterfaceAddresses = (): string[] =>
  Object.values(os.networkInterfaces())
    .flat()
    .flatMap((info) => (info ? [info.address] : []));

type Range = [base: string, prefix: number, label: string];

// Order matters: the first match names the reason (metadata before link-local, etc.).
const IPV4_RANGES: Range[] = [
  ['169.254.169.254', 32, 'cloud metadata'],
  ['0.0.0.0', 8, 'unspecified'],
  ['127.0.0.0', 8, 'loopback'],
  ['10.0.0.0', 8, 'private'],
  ['172.16.0.0', 12, 'private'],
  ['192.168.0.0', 16, 'private'],
  ['100.64.0.0', 10, 'shared address space (CGNAT)'],
  ['169.254.0.0', 16, 'link-local'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV6_RANGES: Range[] = [
  ['fd00:ec2::254', 128, 'cloud metadata'],
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fc00::', 7, 'private'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'],
  ['ff00::', 8, 'multicast'],
  ['64:ff9b:1::', 48, 'private'],
  ['100::', 64, 'reserved'],
  ['2001:db8::', 32, 'reserved'],
];

/** IPv6 prefixes that carry an IPv4 address: the embedded address is judged by the IPv4 table. */
const EMBEDS_IPV4: Array<[base: string, prefix: number, v4Offset: number]> = [
  ['::ffff:0:0', 96, 6], // IPv4-mapped
  ['::', 96, 6], // IPv4-compatible (deprecated, still parsed by some stacks)
  ['::ffff:0:0:0', 96, 6], // IPv4-translated
  ['64:ff9b::', 96, 6], // NAT64
  ['2002::', 16, 1], // 6to4
];

/** Why a sandbox must not reach this address, or undefined for an ordinary public address. */
export function forbiddenAddressReason(address: string): string | undefined {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) return matchIPv4(v4);
  const v6 = parseIPv6(address);
  if (!v6) return 'not an IP address';
  for (const [base, prefix, label] of IPV6_RANGES) {
    if (inIPv6Range(v6, parseIPv6(base)!, prefix)) return label;
  }
  for (const [base, prefix, offset] of EMBEDS_IPV4) {
    if (!inIPv6Range(v6, parseIPv6(base)!, prefix)) continue;
    const embedded = ((v6[offset]! << 16) | v6[offset + 1]!) >>> 0;
    const reason = matchIPv4(embedded);
    if (reason) return `${reason} (IPv4 inside IPv6)`;
  }
  return undefined;
}

/**
 * Comparable forms of an address: its own, plus the IPv4 address it carries when it is one of the
 * IPv6 forms that embed one (so ::ffff:203.0.113.5 counts as 203.0.113.5).
 */
function addressKeys(address: string): string[] {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) return [`4:${v4}`];
  const v6 = parseIPv6(address);
  if (!v6) return [];
  const keys = [`6:${v6.join(':')}`];
  for (const [base, prefix, offset] of EMBEDS_IPV4) {
    if (inIPv6Range(v6, parseIPv6(base)!, prefix))
      keys.push(`4:${((v6[offset]! << 16) | v6[offset + 1]!) >>> 0}`);
  }
  return keys;
}

/** Whether the address is one the host itself has bound. */
export function isOwnAddress(address: string, ownAddresses: readonly string[]): boolean {
  const own = new Set(ownAddresses.flatMap((a) => addressKeys(a).slice(0, 1)));
  return addressKeys(address).some((key) => own.has(key));
}

function matchIPv4(v4: number): string | undefined {
  for (const [base, prefix, label] of IPV4_RANGES) {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((v4 & mask) >>> 0 === (parseIPv4(base)! & mask) >>> 0) return label;
  }
  return undefined;
}

function parseIPv4(text: string): number | undefined {
  if (!net.isIPv4(text)) return undefined;
  return text.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

/** Eight 16-bit groups, or undefined when the text is not an IPv6 address. */
function parseIPv6(text: string): number[] | undefined {
  let s = text.split('%')[0]!; // drop a zone id (fe80::1%eth0)
  if (!net.isIPv6(s)) return undefined;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest ? rest.split(':') : [];
  const fill = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(fill).fill('0'), ...restGroups].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

function inIPv6Range(addr: number[], base: number[], prefix: number): boolean {
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    if (bits === 0) return true;
    const mask = (0xffff << (16 - bits)) & 0xffff;
    if ((addr[i]! & mask) !== (base[i]! & mask)) return false;
  }
  return true;
}

export type TargetDecision =
  | { allowed: true; host: string; port: number; address: string; family: 4 | 6 }
  /** status: 403 for a refusal, 502 when the name cannot be resolved. */
  | { allowed: false; status: 403 | 502; reason: string };

/**
 * The whole egress decision for one target: the group's policy by name first (so a denied name is
 * never even resolved), then every resolved address through the guard. Targets the user listed in
 * allowPrivateTargets pass the guard, except cloud metadata, which no agent has a use for.
 * `ownAddresses` are the host's interface addresses, refused like loopback.
 */
export async function checkTarget(
  host: string,
  port: number,
  policy: GroupNetworkPolicy,
  lookup: LookupFn = systemLookup,
  ownAddresses: readonly string[] = [],
): Promise<TargetDecision> {
  const name = normalizeHost(host);
  if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
    return { allowed: false, status: 403, reason: `invalid target ${host}:${port}` };
  }
  const byPolicy = decideByPolicy(name, port, policy);
  if (!byPolicy.allowed) return { allowed: false, status: 403, reason: byPolicy.reason };

  let addresses: ResolvedAddress[];
  const literal = net.isIP(name);
  if (literal) {
    addresses = [{ address: name, family: literal === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await lookup(name);
    } catch (err) {
      return { allowed: false, status: 502, reason: `cannot resolve ${name}: ${(err as Error).message}` };
    }
    if (addresses.length === 0) return { allowed: false, status: 502, reason: `${name} has no addresses` };
  }

  for (const { address } of addresses) {
    const reason =
      forbiddenAddressReason(address) ?? (isOwnAddress(address, ownAddresses) ? "the host's own" : undefined);
    if (!reason) continue;
    if (byPolicy.explicitTarget && !reason.startsWith('cloud metadata')) continue;
    const what = literal ? address : `${name} (resolves to ${address})`;
    return {
      allowed: false,
      status: 403,
      reason: `${what} is refused: ${reason} addresses are not reachable from a sandbox`,
    };
  }
  const chosen = addresses[0]!;
  return { allowed: true, host: name, port, address: chosen.address, family: chosen.family };
}
