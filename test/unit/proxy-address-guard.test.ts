import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkTarget, forbiddenAddressReason, type LookupFn } from '../../src/proxy/address-guard.js';
import { loadNetworkPolicy, matchesDomain, policyForGroup } from '../../src/proxy/network-policy.js';

const open = policyForGroup({ file: {} }, 'family');

function fakeLookup(table: Record<string, string[]>): LookupFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (host: string) => {
    calls.push(host);
    const addresses = table[host];
    if (!addresses) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    return addresses.map((address) => ({
      address,
      family: address.includes(':') ? (6 as const) : (4 as const),
    }));
  };
  return Object.assign(fn, { calls });
}

describe('forbiddenAddressReason', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.200.3.4', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'cloud metadata'],
    ['169.254.10.1', 'link-local'],
    ['100.64.0.1', 'shared address space (CGNAT)'],
    ['100.127.255.254', 'shared address space (CGNAT)'],
    ['224.0.0.251', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback (IPv4 inside IPv6)'],
    ['::ffff:7f00:1', 'loopback (IPv4 inside IPv6)'],
    ['::FFFF:10.0.0.1', 'private (IPv4 inside IPv6)'],
    ['::ffff:169.254.169.254', 'cloud metadata (IPv4 inside IPv6)'],
    ['64:ff9b::c0a8:101', 'private (IPv4 inside IPv6)'],
    ['2002:c0a8:101::1', 'private (IPv4 inside IPv6)'],
  ])('refuses %s as %s', (address, reason) => {
    expect(forbiddenAddressReason(address)).toBe(reason);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
  ])('lets the public address %s through', (address) => {
    expect(forbiddenAddressReason(address)).toBeUndefined();
  });

  it('treats text that is not an address as forbidden', () => {
    expect(forbiddenAddressReason('example.com')).toBe('not an IP address');
  });
});

describe('checkTarget', () => {
  it('connects to the resolved public address it checked', async () => {
    const lookup = fakeLookup({ 'public.example': ['93.184.216.34'] });
    const decision = await checkTarget('Public.Example.', 443, open, lookup);
    expect(decision).toEqual({
      allowed: true,
      host: 'public.example',
      port: 443,
      address: '93.184.216.34',
      family: 4,
    });
  });

  it('refuses a name when any of its addresses is private (no picking the good one)', async () => {
    const lookup = fakeLookup({ 'mixed.example': ['93.184.216.34', '10.0.0.7'] });
    const decision = await checkTarget('mixed.example', 443, open, lookup);
    expect(decision).toMatchObject({ allowed: false, status: 403 });
    expect(decision.allowed || decision.reason).toContain('10.0.0.7');
  });

  it('checks IP literals without a lookup', async () => {
    const lookup = fakeLookup({});
    expect(await checkTarget('127.0.0.1', 80, open, lookup)).toMatchObject({ allowed: false, status: 403 });
    expect(await checkTarget('[::1]', 80, open, lookup)).toMatchObject({ allowed: false, status: 403 });
    expect(lookup.calls).toEqual([]);
  });

  it('answers 502 when the name does not resolve', async () => {
    const decision = await checkTarget('nowhere.example', 443, open, fakeLookup({}));
    expect(decision).toMatchObject({ allowed: false, status: 502 });
  });

  it('never resolves a denied name', async () => {
    const lookup = fakeLookup({ 'x.blocked.example': ['93.184.216.34'] });
    const policy = { ...open, deny: ['*.blocked.example'] };
    const decision = await checkTarget('x.blocked.example', 443, policy, lookup);
    expect(decision).toMatchObject({ allowed: false, status: 403 });
    expect(lookup.calls).toEqual([]);
  });

  it('lets an explicit private target through the guard, but never cloud metadata', async () => {
    const lookup = fakeLookup({ 'nas.lan': ['192.168.1.20'], 'meta.lan': ['169.254.169.254'] });
    const policy = { ...open, allowPrivateTargets: ['nas.lan:8080', 'meta.lan:80', '169.254.169.254:80'] };
    expect(await checkTarget('nas.lan', 8080, policy, lookup)).toMatchObject({
      allowed: true,
      address: '192.168.1.20',
    });
    expect(await checkTarget('nas.lan', 8081, policy, lookup)).toMatchObject({ allowed: false });
    expect(await checkTarget('meta.lan', 80, policy, lookup)).toMatchObject({ allowed: false });
    expect(await checkTarget('169.254.169.254', 80, policy, lookup)).toMatchObject({ allowed: false });
  });

  it('refuses everything when the group has no network, even explicit targets', async () => {
    const policy = { ...open, noNetwork: true, allowPrivateTargets: ['127.0.0.1:8080'] };
    expect(await checkTarget('127.0.0.1', 8080, policy, fakeLookup({}))).toMatchObject({ allowed: false });
  });

  it('uses the system resolver by default: localhost resolves to loopback and is refused', async () => {
    const decision = await checkTarget('localhost', 80, open);
    expect(decision).toMatchObject({ allowed: false, status: 403 });
    expect(decision.allowed || decision.reason).toMatch(/loopback/);
  });

  it('rejects invalid ports', async () => {
    expect(await checkTarget('93.184.216.34', 0, open, fakeLookup({}))).toMatchObject({ allowed: false });
    expect(await checkTarget('93.184.216.34', 70000, open, fakeLookup({}))).toMatchObject({ allowed: false });
  });
});

describe('network policy file', () => {
  let configDir: string;
  beforeEach(() => {
    configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-policy-'));
  });
  afterEach(() => fs.rmSync(configDir, { recursive: true, force: true }));
  const write = (text: string) => fs.writeFileSync(path.join(configDir, 'network-policy.json'), text);

  it('missing file means no domain rules', () => {
    const loaded = loadNetworkPolicy(configDir);
    expect(loaded.problem).toBeUndefined();
    expect(policyForGroup(loaded, 'main')).toEqual({
      allow: undefined,
      deny: [],
      noNetwork: false,
      noNetworkReason: undefined,
      allowPrivateTargets: [],
    });
  });

  it('an invalid file fails closed and names the bad field', () => {
    write(JSON.stringify({ default: { alow: ['example.com'] } }));
    const loaded = loadNetworkPolicy(configDir);
    expect(loaded.problem).toContain('default');
    const policy = policyForGroup(loaded, 'main');
    expect(policy.noNetwork).toBe(true);
    expect(policy.noNetworkReason).toContain('invalid');
  });

  it('broken JSON fails closed', () => {
    write('{ "default": ');
    expect(policyForGroup(loadNetworkPolicy(configDir), 'main').noNetwork).toBe(true);
  });

  it('rejects a pattern with a scheme or path', () => {
    write(JSON.stringify({ default: { allow: ['https://example.com/'] } }));
    const loaded = loadNetworkPolicy(configDir);
    expect(loaded.problem).toContain('default.allow.0');
  });

  it('a group entry overrides allow and noNetwork and adds to deny', () => {
    write(
      JSON.stringify({
        default: { allow: ['*.example.com'], deny: ['bad.example.com'] },
        groups: {
          family: { allow: ['wikipedia.org'], deny: ['ads.wikipedia.org'] },
          kids: { noNetwork: true },
        },
        allowPrivateTargets: ['LOCALHOST:8080', '[::1]:9000'],
      }),
    );
    const loaded = loadNetworkPolicy(configDir);
    expect(policyForGroup(loaded, 'family')).toMatchObject({
      allow: ['wikipedia.org'],
      deny: ['bad.example.com', 'ads.wikipedia.org'],
      noNetwork: false,
      allowPrivateTargets: ['localhost:8080', '::1:9000'],
    });
    expect(policyForGroup(loaded, 'kids')).toMatchObject({ allow: ['*.example.com'], noNetwork: true });
    expect(policyForGroup(loaded, 'other')).toMatchObject({ allow: ['*.example.com'], noNetwork: false });
  });

  it('wildcards match subdomains only', () => {
    expect(matchesDomain('api.example.com', '*.example.com')).toBe(true);
    expect(matchesDomain('a.b.example.com', '*.example.com')).toBe(true);
    expect(matchesDomain('example.com', '*.example.com')).toBe(false);
    expect(matchesDomain('badexample.com', '*.example.com')).toBe(false);
    expect(matchesDomain('Example.COM.', 'example.com')).toBe(true);
    expect(matchesDomain('www.example.com', 'example.com')).toBe(false);
  });
});
