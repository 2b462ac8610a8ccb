import { z } from 'zod';
import { zodProblems } from '../util/zod-problems.js';
import { parseJson } from './http-util.js';
import {
  networkPolicyPath,
  normalizeHost,
  policyForGroup,
  type GroupNetworkPolicy,
  type LoadedNetworkPolicy,
} from './network-policy.js';

// Run by the sandbox, or never leave Anthropic (tool search, advisor).
const PASS =
  /^(custom|(bash|text_editor|computer|memory|advisor)_\d{8}|tool_search_tool_(regex|bm25)(_\d{8})?)$/;
const WEB = /^(web_search|web_fetch)_\d{8}$/;
const FEATURE_BETA = /^(web-search|web-fetch|code-execution|files-api|skills|mcp-client|mcp-servers)-/;
const domains = z.array(z.string()).nullish();
const tool = z.looseObject({
  type: z.string().nullish(),
  allowed_domains: domains,
  blocked_domains: domains,
});
const bodySchema = z.looseObject({
  tools: z.array(tool).nullish(),
  mcp_servers: z.array(z.any()).nullish(),
  container: z.unknown().optional(),
});

type Tool = Record<string, unknown>;

// Server tools reach out past the egress proxy: unless the policy is fully open they are refused, but web search
// and fetch get a domain filter. Re-serialised, so no duplicate keys reach the upstream.
export function checkServerTools(
  raw: Buffer,
  betas: string[],
  loaded: LoadedNetworkPolicy,
  folder: string,
  configDir: string,
): { body: Buffer; betas: string[] } | { status: 400 | 403; message: string } {
  const policy = policyForGroup(loaded, folder);
  const { noNetwork, allow } = policy;
  if (!noNetwork && !allow && policy.deny.length === 0) return { body: raw, betas };
  const json = parseJson(raw.toString()) as { tools?: Tool[] } | undefined;
  const parsed = bodySchema.safeParse(json);
  if (!parsed.success) {
    const problem = json === undefined ? 'the body is not valid JSON' : zodProblems(parsed.error);
    return { status: 400, message: `The model proxy could not read this request: ${problem}.` };
  }
  const policyFile = networkPolicyPath(configDir);
  const what = noNetwork
    ? 'allows no network'
    : allow
      ? 'only allows the domains in its allow list'
      : 'denies some domains';
  const why =
    loaded.source === 'invalid'
      ? `the network policy file ${policyFile} is invalid, so no group has network until it is fixed (see the host log)`
      : `its network policy ${what} (set in ${policyFile})`;
  const openOnly = `${why}; it runs on Anthropic's side, so only groups with a fully open network policy may use it`;
  const refuse = (name: string, reason = openOnly) =>
    ({ status: 403, message: `${name} is not allowed for this group: ${reason}.` }) as const;

  const { tools, mcp_servers: servers, container } = parsed.data;
  if (servers?.length)
    return refuse(`the MCP connector (mcp_servers: ${servers.map((s) => s?.url ?? '(no url)').join(', ')})`);
  if (container != null) return refuse('a code execution container');
  const body: Tool = { ...json };
  if (tools) {
    const fitted: Tool[] = (body.tools = []);
    for (const [i, { type }] of tools.entries()) {
      const original = json!.tools![i]!;
      const label = type?.replace(/_\d{8}$/, '') ?? '';
      if (!type || PASS.test(type)) fitted.push(original);
      else if (!WEB.test(type)) return refuse(`the server tool ${label} (${type})`);
      else if (noNetwork) return refuse(label, why);
      else {
        const fit = fitWebTool(original, policy);
        if (typeof fit === 'string') return refuse(label, `${fit} (set in ${policyFile})`);
        fitted.push(fit);
      }
    }
  }
  const kept = betas.filter((beta) => {
    const feature = FEATURE_BETA.exec(beta)?.[1];
    return !feature || (!noNetwork && feature.startsWith('web-'));
  });
  return { body: Buffer.from(JSON.stringify(body)), betas: kept };
}

const under = (host: string, base: string) => host === base || host.endsWith(`.${base}`);

// Anthropic's `b` covers its subdomains, so an allow list translates only through names listed as both `b` and
// `*.b`, and a denied `*.b` blocks b too.
function fitWebTool(tool: Tool, policy: GroupNetworkPolicy): Tool | string {
  const requested = (tool.allowed_domains ?? []) as string[];
  const blocked = (tool.blocked_domains ?? []) as string[];
  const denied = [...new Set(policy.deny.map((d) => normalizeHost(d).replace(/^\*\./, '')))];
  const allow = policy.allow?.map(normalizeHost);
  const bases = allow && [...new Set(allow.filter((b) => allow.includes(`*.${b}`)))];
  if (bases && (bases.length === 0 || denied.length > 0 || blocked.length > 0))
    return "its network policy is a domain allow list that Anthropic's domain filter cannot express (it takes names listed as both x and *.x, without deny rules, and not blocked_domains)";
  if (requested.length === 0)
    return bases
      ? { ...tool, allowed_domains: bases }
      : { ...tool, blocked_domains: [...new Set([...blocked, ...denied])] };
  const kept = requested.filter((entry) => {
    const host = normalizeHost(entry.split('/')[0]!); // example.com/blog
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(host)) return false; // a scheme, port or wildcard
    return bases ? bases.some((b) => under(host, b)) : !denied.some((d) => under(host, d) || under(d, host));
  });
  if (kept.length > 0) return { ...tool, allowed_domains: kept };
  return `none of the domains it names (${requested.join(', ')}) is wholly allowed by this group's network policy`;
}
