import { normalizeHost, type GroupNetworkPolicy } from './network-policy.js';

/**
 * Fitting Anthropic's web_search / web_fetch domain filter to a group's domain policy.
 *
 * The two languages differ: in Anthropic's `allowed_domains` / `blocked_domains` an entry
 * `example.com` covers example.com *and every subdomain* (and may carry a path, `example.com/blog`),
 * while in network-policy.json `example.com` is that one name and `*.example.com` its subdomains
 * only. So the translation only ever narrows:
 *
 * - allow list: an Anthropic entry is kept only when everything it covers is allowed, i.e. the
 *   policy has both `example.com` and `*.example.com`, or a wildcard above it (`*.com` covers
 *   `example.com`), and no deny rule touches it. A policy of only `*.example.com` or only
 *   `example.com` cannot be expressed, so such a group gets no web search rather than a wider one.
 * - deny list only: the deny rules are added to `blocked_domains` (`*.example.com` becomes
 *   `example.com`, which also blocks the apex: blocking more is the safe direction). When the
 *   request names `allowed_domains` instead (Anthropic refuses both at once), entries that any deny
 *   rule touches are dropped.
 */

export type DomainFit =
  { ok: true; tool: Record<string, unknown>; note: string } | { ok: false; why: string };

/** A host as Anthropic's filter entries name it: no scheme, port or wildcard. */
const PLAIN_HOST = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** The host part of a filter entry (`example.com/blog` → `example.com`); undefined if unusable. */
function entryHost(entry: string): string | undefined {
  const text = entry.trim().toLowerCase();
  const slash = text.indexOf('/');
  const host = normalizeHost(slash === -1 ? text : text.slice(0, slash));
  return PLAIN_HOST.test(host) ? host : undefined;
}

const isUnder = (host: string, base: string) => host.endsWith(`.${base}`);

interface Patterns {
  exact: string[];
  /** Bases of `*.base` patterns. */
  wild: string[];
}

function split(patterns: readonly string[]): Patterns {
  const normalized = patterns.map(normalizeHost);
  return {
    exact: normalized.filter((p) => !p.startsWith('*.')),
    wild: normalized.filter((p) => p.startsWith('*.')).map((p) => p.slice(2)),
  };
}

/** Whether the policy allows the host and every subdomain of it. */
function whollyAllowed(host: string, allow: Patterns): boolean {
  if (allow.wild.some((base) => isUnder(host, base))) return true;
  return allow.exact.includes(host) && allow.wild.includes(host);
}

/** Whether some deny rule matches the host or any of its subdomains. */
function touchedByDeny(host: string, deny: Patterns): boolean {
  if (deny.exact.some((d) => d === host || isUnder(d, host))) return true;
  return deny.wild.some((d) => d === host || isUnder(d, host) || isUnder(host, d));
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

const unique = (items: string[]) => [...new Set(items)];

/**
 * The web tool definition rewritten to stay inside a policy that has an allow list or deny rules
 * (a policy without either is open and needs no rewrite; no network is refused before this).
 */
export function fitWebToolToPolicy(tool: Record<string, unknown>, policy: GroupNetworkPolicy): DomainFit {
  const deny = split(policy.deny);
  const requested = stringList(tool.allowed_domains);
  const blocked = stringList(tool.blocked_domains);

  if (policy.allow) {
    const allow = split(policy.allow);
    const safe = (entry: string) => {
      const host = entryHost(entry);
      return host !== undefined && whollyAllowed(host, allow) && !touchedByDeny(host, deny);
    };
    if (blocked.length > 0) {
      return {
        ok: false,
        why: 'its network policy is a domain allow list, so the tool may name allowed_domains but not blocked_domains',
      };
    }
    if (requested.length > 0) {
      const kept = requested.filter(safe);
      if (kept.length === 0) {
        return {
          ok: false,
          why: `none of the domains it names (${requested.join(', ')}) lies wholly inside this group's allow list`,
        };
      }
      return {
        ok: true,
        tool: { ...tool, allowed_domains: kept },
        note: `allowed_domains narrowed to ${kept.join(',')}`,
      };
    }
    const candidates = unique([...allow.exact, ...allow.wild]).filter(safe);
    if (candidates.length === 0) {
      return {
        ok: false,
        why:
          "its network policy is a domain allow list that Anthropic's domain filter cannot express: there an " +
          'entry example.com also covers all its subdomains, so the allow list needs both example.com and ' +
          '*.example.com (or a wildcard above them)',
      };
    }
    return {
      ok: true,
      tool: { ...tool, allowed_domains: candidates },
      note: `allowed_domains set to ${candidates.join(',')}`,
    };
  }

  if (requested.length > 0) {
    const kept = requested.filter((entry) => {
      const host = entryHost(entry);
      return host !== undefined && !touchedByDeny(host, deny);
    });
    if (kept.length === 0) {
      return {
        ok: false,
        why: `every domain it names (${requested.join(', ')}) is denied by this group's network policy`,
      };
    }
    return {
      ok: true,
      tool: { ...tool, allowed_domains: kept },
      note: `allowed_domains narrowed to ${kept.join(',')}`,
    };
  }
  const denied = unique([...deny.exact, ...deny.wild]);
  return {
    ok: true,
    tool: { ...tool, blocked_domains: unique([...blocked, ...denied]) },
    note: `blocked_domains extended with ${denied.join(',')}`,
  };
}
