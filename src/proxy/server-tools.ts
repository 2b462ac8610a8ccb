import { z } from 'zod';
import { zodProblems } from '../util/zod-problems.js';
import { parseJson } from './http-util.js';
import { normalizeHost, type GroupNetworkPolicy } from './network-policy.js';

// Server tools reach out from Anthropic's side, past the egress proxy: unless the policy is fully open they are
// refused, but web search and fetch get a domain filter that says what the policy says.
export const serverToolsOpen = (policy: GroupNetworkPolicy) =>
  !policy.noNetwork && !policy.allow && policy.deny.length === 0;

// Run by the sandbox, or never leave Anthropic (tool search, advisor).
const PASS =
  /^(custom|(bash|text_editor|computer|memory|advisor)_\d{8}|tool_search_tool_(regex|bm25)(_\d{8})?)$/;
const WEB = /^(web_search|web_fetch)_\d{8}$/;
const FEATURE_BETA = /^(web-search|web-fetch|code-execution|files-api|skills|mcp-client|mcp-servers)-/;
const OPEN_ONLY = "it runs on Anthropic's side, so only groups with a fully open network policy may use it";
const ALLOW_LIST_WHY =
  "its network policy is a domain allow list that Anthropic's domain filter cannot express (it takes " +
  'names listed as both x and *.x, without deny rules, and not blocked_domains)';

const domains = z.array(z.string()).nullish();
const bodySchema = z.looseObject({
  tools: z
    .array(z.looseObject({ type: z.string().nullish(), allowed_domains: domains, blocked_domains: domains }))
    .nullish(),
  mcp_servers: z.array(z.unknown()).nullish(),
  container: z.unknown().optional(),
});

/** The body to forward is built from the original, in its key order. */
export function checkServerTools(
  text: string,
  betas: readonly string[],
  policy: GroupNetworkPolicy,
  { invalidFile, policyFile }: { invalidFile: boolean; policyFile: string },
): { body: Record<string, unknown>; betas: string[] } | { status: 400 | 403; message: string } {
  const raw = parseJson(text) as Record<string, unknown> | undefined;
  const parsed = bodySchema.safeParse(raw);
  if (!parsed.success) {
    const problem = raw === undefined ? 'the body is not valid JSON' : zodProblems(parsed.error);
    return { status: 400, message: `The model proxy could not read this request: ${problem}.` };
  }
  const what = policy.noNetwork
    ? 'allows no network'
    : policy.allow
      ? 'only allows the domains in its allow list'
      : 'denies some domains';
  const why = invalidFile
    ? `the network policy file ${policyFile} is invalid, so no group has network until it is fixed (see the host log)`
    : `its network policy ${what} (set in ${policyFile})`;
  const refuse = (tool: string, reason = `${why}; ${OPEN_ONLY}`) =>
    ({ status: 403, message: `${tool} is not allowed for this group: ${reason}.` }) as const;

  const { tools, mcp_servers: servers, container } = parsed.data;
  if (servers?.length) {
    const urls = servers.map((s) => String((s as { url?: unknown } | null)?.url ?? '(no url)'));
    return refuse(`the MCP connector (mcp_servers: ${urls.join(', ')})`);
  }
  if (container != null) return refuse('a code execution container');
  const body = { ...raw };
  if (tools) {
    const originals = raw!.tools as Record<string, unknown>[];
    const fitted: unknown[] = [];
    for (const [i, { type, allowed_domains, blocked_domains }] of tools.entries()) {
      const label = type?.replace(/_\d{8}$/, '') ?? '';
      if (!type || PASS.test(type)) fitted.push(originals[i]);
      else if (!WEB.test(type)) return refuse(`the server tool ${label} (${type})`);
      else if (policy.noNetwork) return refuse(label, why);
      else {
        const fit = fitWebTool(originals[i]!, allowed_domains ?? [], blocked_domains ?? [], policy);
        if (typeof fit === 'string') return refuse(label, `${fit} (set in ${policyFile})`);
        fitted.push(fit);
      }
    }
    body.tools = fitted;
  }
  const kept = betas.filter((beta) => {
    const feature = FEATURE_BETA.exec(beta)?.[1];
    return !feature || (!policy.noNetwork && feature.startsWith('web-'));
  });
  return { body, betas: kept };
}

const under = (host: string, base: string) => host === base || host.endsWith(`.${base}`);

/**
 * Anthropic's `example.com` covers its subdomains too, so an allow list translates only through names listed
 * as both `b` and `*.b`, and a denied `*.b` blocks b too (the safe side). The tool to forward, or why not.
 */
function fitWebTool(
  tool: Record<string, unknown>,
  requested: string[],
  blocked: string[],
  policy: GroupNetworkPolicy,
): Record<string, unknown> | string {
  const denied = [...new Set(policy.deny.map((d) => normalizeHost(d).replace(/^\*\./, '')))];
  const allow = policy.allow?.map(normalizeHost);
  const bases = allow && [...new Set(allow.filter((b) => allow.includes(`*.${b}`)))];
  if (bases && (bases.length === 0 || denied.length > 0 || blocked.length > 0)) return ALLOW_LIST_WHY;
  if (requested.length === 0) {
    return bases
      ? { ...tool, allowed_domains: bases }
      : { ...tool, blocked_domains: [...new Set([...blocked, ...denied])] };
  }
  const kept = requested.filter((entry) => {
    const host = normalizeHost(entry.split('/')[0]!); // example.com/blog
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(host)) return false; // a scheme, port or wildcard
    return bases ? bases.some((b) => under(host, b)) : !denied.some((d) => under(host, d) || under(d, host));
  });
  if (kept.length > 0) return { ...tool, allowed_domains: kept };
  return `none of the domains it names (${requested.join(', ')}) is wholly allowed by this group's network policy`;
}
