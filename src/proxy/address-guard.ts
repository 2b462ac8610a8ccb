import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { decideByPolicy, normalizeHost, type GroupNetworkPolicy } from './network-policy.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type LookupFn = (host: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupFn = async (host) =>
  (await dns.promises.lookup(host, { all: true, verbatim: true })) as ResolvedAddress[];

/** A service on 0.0.0.0 is reachable at the host's public address, which no range table knows. */
export const systemInterfaceAddresses = (): string[] =>
  Object.values(os.networkInterfaces()).flatMap((infos) => (infos ?? []).map((i) => i.address));

interface Address {
  bits: bigint;
  v6: boolean;
}

function parse(text: string): Address | undefined {
  const s = text.split('%')[0]!; // a zone id (fe80::1%eth0)
  if (net.isIPv4(s)) return { bits: s.split('.').reduce((a, p) => (a << 8n) | BigInt(p), 0n), v6: false };
  if (!net.isIPv6(s)) return undefined;
  // Canonical from the URL parser (hex, one `::`), then `::` expanded.
  const c = new URL(`http://[${s}]`).hostname.slice(1, -1);
  const groups = c.replace('::', `:${'0:'.repeat(9 - c.split(':').length)}`).split(':');
  return { bits: groups.reduce((a, g) => (a << 16n) | BigInt(`0x0${g}`), 0n), v6: true };
}

const cidrs = (list: string) =>
  list.split(' ').map((cidr) => {
    const [base, prefix] = cidr.split('/');
    const a = parse(base!)!;
    return { ...a, shift: BigInt((a.v6 ? 128 : 32) - Number(prefix)) };
  });

const inRange = (a: Address, r: Address & { shift: bigint }) =>
  a.v6 === r.v6 && a.bits >> r.shift === r.bits >> r.shift;

// The first match names the reason (metadata before link-local).
const RANGES = Object.entries({
  'cloud metadata': '169.254.169.254/32 fd00:ec2::254/128',
  unspecified: '0.0.0.0/8 ::/128',
  loopback: '127.0.0.0/8 ::1/128',
  private: '10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 fec0::/10 64:ff9b:1::/48',
  'shared address space (CGNAT)': '100.64.0.0/10',
  'link-local': '169.254.0.0/16 fe80::/10',
  reserved:
    '192.0.0.0/24 192.0.2.0/24 198.18.0.0/15 198.51.100.0/24 203.0.113.0/24 240.0.0.0/4 100::/64 2001:db8::/32',
  multicast: '224.0.0.0/4 ff00::/8',
}).flatMap(([label, list]) => cidrs(list).map((r) => ({ ...r, label })));

// IPv6 that carries IPv4: mapped, compatible, translated, NAT64, 6to4.
const EMBEDS_IPV4 = cidrs('::ffff:0:0/96 ::/96 ::ffff:0:0:0/96 64:ff9b::/96 2002::/16');

function embeddedIPv4(a: Address): Address | undefined {
  const embed = EMBEDS_IPV4.find((r) => inRange(a, r));
  if (!embed) return undefined;
  return { bits: (embed.shift === 112n ? a.bits >> 80n : a.bits) & 0xffffffffn, v6: false };
}

const rangeOf = (a: Address | undefined) => a && RANGES.find((r) => inRange(a, r))?.label;

export function forbiddenAddressReason(address: string): string | undefined {
  const a = parse(address);
  if (!a) return 'not an IP address';
  const inner = rangeOf(embeddedIPv4(a));
  return rangeOf(a) ?? (inner && `${inner} (IPv4 inside IPv6)`);
}

/** IPv4, and IPv6 that carries IPv4, compare as the IPv4 number. */
function key(text: string) {
  const a = parse(text);
  return a && (a.v6 ? (embeddedIPv4(a)?.bits ?? `6:${a.bits}`) : a.bits);
}

export function isOwnAddress(address: string, ownAddresses: readonly string[]): boolean {
  const own = key(address);
  return own !== undefined && ownAddresses.some((o) => key(o) === own);
}

export type TargetDecision =
  | { allowed: true; host: string; port: number; address: string; family: 4 | 6 }
  | { allowed: false; status: 403 | 502; reason: string };

/**
 * Policy by name first (a denied name is never resolved), then every resolved address; the proxy
 * dials the address checked here, so DNS rebinding cannot slip between check and connect.
 */
export async function checkTarget(
  host: string,
  port: number,
  policy: GroupNetworkPolicy,
  lookup: LookupFn = systemLookup,
  ownAddresses: readonly string[] = [],
): Promise<TargetDecision> {
  const refuse = (reason: string, status: 403 | 502 = 403) => ({ allowed: false, status, reason }) as const;
  const name = normalizeHost(host);
  if (!name || !Number.isInteger(port) || port < 1 || port > 65535)
    return refuse(`invalid target ${host}:${port}`);
  const byPolicy = decideByPolicy(name, port, policy);
  if (!byPolicy.allowed) return refuse(byPolicy.reason);

  const literal = net.isIP(name);
  let addresses: ResolvedAddress[] = [{ address: name, family: literal === 6 ? 6 : 4 }];
  if (!literal) {
    try {
      addresses = await lookup(name);
    } catch (err) {
      return refuse(`cannot resolve ${name}: ${(err as Error).message}`, 502);
    }
    if (addresses.length === 0) return refuse(`${name} has no addresses`, 502);
  }
  for (const { address } of addresses) {
    const reason =
      forbiddenAddressReason(address) ?? (isOwnAddress(address, ownAddresses) ? "the host's own" : undefined);
    if (!reason || (byPolicy.explicitTarget && !reason.startsWith('cloud metadata'))) continue;
    const what = literal ? address : `${name} (resolves to ${address})`;
    return refuse(`${what} is refused: ${reason} addresses are not reachable from a sandbox`);
  }
  const { address, family } = addresses[0]!;
  return { allowed: true, host: name, port, address, family };
}
