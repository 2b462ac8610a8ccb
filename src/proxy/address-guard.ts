import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { matchesDomain, normalizeHost, type GroupNetworkPolicy } from './network-policy.js';

export type LookupFn = (host: string) => Promise<{ address: string; family: number }[]>;

// A service on 0.0.0.0 is also reachable at the host's public address.
export const systemInterfaceAddresses = () =>
  Object.values(os.networkInterfaces()).flatMap((infos) => (infos ?? []).map((i) => i.address));

// Addresses as numbers; IPv4 ones carry this bit.
const V4 = 1n << 128n;
const LOW32 = 0xffffffffn;

function parse(text: string): bigint | undefined {
  const s = text.split('%')[0]!; // a zone id (fe80::1%eth0)
  if (net.isIPv4(s)) return V4 | s.split('.').reduce((a, p) => (a << 8n) | BigInt(p), 0n);
  if (!net.isIPv6(s)) return undefined;
  const c = new URL(`http://[${s}]`).hostname.slice(1, -1);
  const groups = c.replace('::', `:${'0:'.repeat(9 - c.split(':').length)}`).split(':');
  return groups.reduce((a, g) => (a << 16n) | BigInt(`0x0${g}`), 0n);
}

function inRanges(list: string): (a: bigint) => boolean {
  const ranges = list.split(' ').map((cidr) => {
    const [base, prefix] = cidr.split('/');
    const bits = parse(base!)!;
    return [bits, BigInt((bits >= V4 ? 32 : 128) - Number(prefix))] as const;
  });
  return (a) => ranges.some(([bits, shift]) => a >> shift === bits >> shift);
}

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
}).map(([label, list]) => ({ label, has: inRanges(list) }));

// IPv6 that carries IPv4 in its last 32 bits (mapped, NAT64...), or after 16 (6to4).
const CARRIES_IPV4 = inRanges('::ffff:0:0/96 ::/96 ::ffff:0:0:0/96 64:ff9b::/96');
const SIX_TO_FOUR = inRanges('2002::/16');
const embeddedIPv4 = (a: bigint) =>
  CARRIES_IPV4(a) ? V4 | (a & LOW32) : SIX_TO_FOUR(a) ? V4 | ((a >> 80n) & LOW32) : undefined;
const rangeOf = (a?: bigint) => (a === undefined ? undefined : RANGES.find((r) => r.has(a))?.label);
const ipKey = (text: string) => {
  const a = parse(text);
  return a === undefined ? undefined : (embeddedIPv4(a) ?? a);
};

export function forbiddenAddressReason(address: string) {
  const a = parse(address);
  if (a === undefined) return 'not an IP address';
  const inner = rangeOf(embeddedIPv4(a));
  return rangeOf(a) ?? (inner && `${inner} (IPv4 inside IPv6)`);
}

export function isOwnAddress(address: string, ownAddresses: readonly string[]) {
  const own = ipKey(address);
  return own !== undefined && ownAddresses.some((o) => ipKey(o) === own);
}

// A denied name is never resolved; every address is checked; the proxy dials the one returned.
export async function checkTarget(
  host: string,
  port: number,
  policy: GroupNetworkPolicy,
  lookup: LookupFn = (h) => dns.promises.lookup(h, { all: true, verbatim: true }),
  ownAddresses: readonly string[] = systemInterfaceAddresses(),
) {
  const refuse = (reason: string, status: 403 | 502 = 403) => ({ allowed: false, status, reason }) as const;
  const name = normalizeHost(host);
  if (!name || !Number.isInteger(port) || port < 1 || port > 65535)
    return refuse(`invalid target ${host}:${port}`);
  if (policy.noNetwork) return refuse(policy.noNetworkReason!);
  const denied = policy.deny.find((p) => matchesDomain(name, p));
  if (denied) return refuse(`${name} is denied by the network policy (${denied})`);
  const explicit = policy.allowPrivateTargets.includes(`${name}:${port}`);
  if (!explicit && policy.allow && !policy.allow.some((p) => matchesDomain(name, p)))
    return refuse(`${name} is not in this group's allow list`);

  const literal = net.isIP(name);
  const found = literal
    ? [{ address: name, family: literal }]
    : await lookup(name).catch((e: Error) => e.message);
  if (typeof found === 'string' || !found[0])
    return refuse(`cannot resolve ${name}: ${typeof found === 'string' ? found : 'no addresses'}`, 502);
  for (const { address } of found) {
    const reason =
      forbiddenAddressReason(address) ?? (isOwnAddress(address, ownAddresses) ? "the host's own" : '');
    // The user may list a private target, never cloud metadata.
    if (!reason || (explicit && !reason.startsWith('cloud metadata'))) continue;
    const what = literal ? address : `${name} (resolves to ${address})`;
    return refuse(`${what} is refused: ${reason} addresses are not reachable from a sandbox`);
  }
  const { address, family } = found[0];
  return { allowed: true, host: name, port, address, family: family === 6 ? 6 : 4 } as const;
}
