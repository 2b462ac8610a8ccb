import { describe, expect, it } from 'vitest';
import type { GroupNetworkPolicy } from '../../src/proxy/network-policy.js';
import { fitWebToolToPolicy } from '../../src/proxy/server-tool-domains.js';

const policy = (allow: string[] | undefined, deny: string[] = []): GroupNetworkPolicy => ({
  allow,
  deny,
  noNetwork: false,
  allowPrivateTargets: [],
});
const tool = (fields: Record<string, unknown> = {}) => ({
  type: 'web_search_20250305',
  name: 'web_search',
  ...fields,
});

function allowed(p: GroupNetworkPolicy, fields?: Record<string, unknown>): unknown {
  const fit = fitWebToolToPolicy(tool(fields), p);
  return fit.ok ? fit.tool.allowed_domains : `refused: ${fit.why}`;
}

describe('fitWebToolToPolicy', () => {
  it.each([
    [['example.com', '*.example.com'], ['example.com']],
    [['Example.COM.', '*.example.com'], ['example.com']],
    [['example.com'], 'refused'], // Anthropic's example.com would also cover its subdomains
    [['*.example.com'], 'refused'], // ...and the apex, which the list leaves out
    [
      ['a.org', '*.a.org', 'b.org', '*.b.org'],
      ['a.org', 'b.org'],
    ],
  ])('allow list %j gives allowed_domains %j', (allow, expected) => {
    const result = allowed(policy(allow));
    if (expected === 'refused') expect(result).toMatch(/^refused: .*cannot express/);
    else expect(result).toEqual(expected);
  });

  it.each([
    ['docs.example.com', ['*.example.com'], true],
    ['deep.docs.example.com/path/*', ['*.example.com'], true],
    ['example.com', ['*.com'], true],
    ['example.com', ['*.example.com'], false],
    ['example.com/blog', ['example.com', '*.example.com'], true],
    ['https://docs.example.com', ['*.example.com'], false],
    ['docs.example.com:8443', ['*.example.com'], false],
    ['*.example.com', ['*.example.com'], false],
  ])('a requested entry %s is kept under %j: %s', (entry, allow, kept) => {
    expect(allowed(policy(allow), { allowed_domains: [entry] })).toEqual(
      kept ? [entry] : expect.stringMatching(/^refused/),
    );
  });

  it('drops allow-list entries that a deny rule reaches into', () => {
    const p = policy(['*.example.com'], ['secret.docs.example.com']);
    expect(allowed(p, { allowed_domains: ['docs.example.com', 'www.example.com'] })).toEqual([
      'www.example.com',
    ]);
    expect(allowed(policy(['example.com', '*.example.com'], ['*.internal.example.com']))).toMatch(/^refused/);
  });

  it('adds deny rules to blocked_domains when there is no allow list', () => {
    const fit = fitWebToolToPolicy(
      tool({ blocked_domains: ['x.org'] }),
      policy(undefined, ['*.ads.example', 'x.org']),
    );
    expect(fit).toMatchObject({ ok: true, tool: { blocked_domains: ['x.org', 'ads.example'] } });
    expect(fit.ok && fit.tool.allowed_domains).toBeUndefined();
  });

  it('keeps every other field of the tool', () => {
    const fit = fitWebToolToPolicy(
      tool({ max_uses: 3, user_location: { type: 'approximate' } }),
      policy(['a.org', '*.a.org']),
    );
    expect(fit).toEqual({
      ok: true,
      tool: { ...tool({ max_uses: 3, user_location: { type: 'approximate' } }), allowed_domains: ['a.org'] },
      note: 'allowed_domains set to a.org',
    });
  });
});
