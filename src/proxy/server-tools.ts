import { z } from 'zod';
import { policyForGroup, type GroupNetworkPolicy, type LoadedNetworkPolicy } from './network-policy.js';
import { fitWebToolToPolicy } from './server-tool-domains.js';

/**
 * The model's server-side tools run on Anthropic's machines, so the egress proxy never sees their
 * traffic: web search and web fetch reach any site, code execution runs in Anthropic's containers
 * (shared by every group that uses the same key), and the MCP connector makes Anthropic dial any
 * URL in `mcp_servers`. The model proxy therefore holds each request to the group's network policy:
 *
 * - open policy (no allow list, no deny rules, network on): everything passes unchanged;
 * - no network (or an invalid policy file): every server tool that reaches out is refused;
 * - allow list or deny rules: web_search / web_fetch pass with their domain filter fitted to the
 *   policy (server-tool-domains.ts); code execution, `container`, the MCP connector and any server
 *   tool this file does not know are refused, because no part of them can be held to a domain list.
 *
 * Tools that run in the sandbox (custom tools, bash/text_editor/computer/memory definitions) and
 * server tools that never leave Anthropic (tool search, the advisor model) pass in every case.
 */

export type PolicyKind = 'no-network' | 'allow-list' | 'deny-list' | 'open';

export function policyKind(policy: GroupNetworkPolicy): PolicyKind {
  if (policy.noNetwork) return 'no-network';
  if (policy.allow) return 'allow-list';
  return policy.deny.length > 0 ? 'deny-list' : 'open';
}

/** Executed by the agent-runner in the sandbox, so its traffic already goes through the egress proxy. */
const CLIENT_TOOL = /^(custom|(bash|text_editor|computer|memory)_\d{8})$/;
/** Executed by Anthropic without network access. */
const CONTAINED_SERVER_TOOL = /^(tool_search_tool_(regex|bm25)(_\d{8})?|advisor_\d{8})$/;
const WEB_TOOL = /^(web_search|web_fetch)_\d{8}$/;
const CODE_TOOL = /^code_execution_\d{8}$/;

type Feature = 'web' | 'code' | 'mcp';

/** Betas that only switch on a server-side feature; dropped when the group may not use it. */
const FEATURE_BETAS: Array<[prefix: string, feature: Feature]> = [
  ['web-search-', 'web'],
  ['web-fetch-', 'web'],
  ['code-execution-', 'code'],
  ['files-api-', 'code'],
  ['skills-', 'code'],
  ['mcp-client-', 'mcp'],
  ['mcp-servers-', 'mcp'],
];

const FEATURES_BY_KIND: Record<PolicyKind, readonly Feature[]> = {
  'no-network': [],
  'allow-list': ['web'],
  'deny-list': ['web'],
  open: ['web', 'code', 'mcp'],
};

const toolSchema = z.looseObject({
  type: z.string().nullish(),
  name: z.string().nullish(),
  allowed_domains: z.array(z.string()).nullish(),
  blocked_domains: z.array(z.string()).nullish(),
});

const bodySchema = z.looseObject({
  tools: z.array(toolSchema).nullish(),
  mcp_servers: z.array(z.unknown()).nullish(),
  container: z.unknown().optional(),
});

export interface ServerToolContext {
  folder: string;
  loaded: LoadedNetworkPolicy;
  /** Named in every refusal so the person knows which file to edit. */
  policyFile: string;
}

export type ServerToolDecision =
  | {
      ok: true;
      /** The body to forward (re-serialised, so the upstream parses exactly what was checked). */
      body: Record<string, unknown>;
      betas: string[];
      notes: string[];
    }
  | { ok: false; status: 400 | 403; type: 'invalid_request_error' | 'permission_error'; message: string };

/** Whether a request to this group needs its body checked at all. */
export function serverToolsUnrestricted(loaded: LoadedNetworkPolicy, folder: string): boolean {
  return policyKind(policyForGroup(loaded, folder)) === 'open';
}

/** Why the group's policy limits server tools, phrased to follow "…not allowed for this group: ". */
function policyWhy(kind: PolicyKind, ctx: ServerToolContext): string {
  if (ctx.loaded.source === 'invalid') {
    return `the network policy file ${ctx.policyFile} is invalid, so no group has network until it is fixed (see the host log)`;
  }
  const what =
    kind === 'no-network'
      ? 'allows no network'
      : kind === 'allow-list'
        ? 'only allows the domains in its allow list'
        : 'denies some domains';
  return `its network policy ${what} (set in ${ctx.policyFile})`;
}

const OPEN_ONLY =
  "it runs on Anthropic's side, outside the egress proxy, and cannot be held to a domain list, so only groups whose network policy is fully open may use it";
const UNKNOWN_OPEN_ONLY =
  'the model proxy does not know what it reaches, so only groups whose network policy is fully open may use it';

/** Checks (and where the policy allows, narrows) one Messages API request body. */
export function checkServerTools(
  raw: unknown,
  betas: readonly string[],
  ctx: ServerToolContext,
): ServerToolDecision {
  const parsed = bodySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(body)';
    return {
      ok: false,
      status: 400,
      type: 'invalid_request_error',
      message: `The model proxy could not read this request: ${field}: ${issue?.message ?? 'invalid'}`,
    };
  }
  const policy = policyForGroup(ctx.loaded, ctx.folder);
  const kind = policyKind(policy);
  // The checked values come from the zod result; what is forwarded is built from the original, so
  // keys keep their order and nothing the schema does not name is touched.
  const body = { ...(raw as Record<string, unknown>) };
  const notes: string[] = [];
  const refuse = (what: string, reason: string): ServerToolDecision => ({
    ok: false,
    status: 403,
    type: 'permission_error',
    message: `${what} is not allowed for this group: ${reason}.`,
  });

  if (kind !== 'open') {
    const servers = parsed.data.mcp_servers ?? [];
    if (servers.length > 0) {
      return refuse(
        `the MCP connector (mcp_servers: ${describeServers(servers)})`,
        `${policyWhy(kind, ctx)}; ${OPEN_ONLY}`,
      );
    }
    if (parsed.data.container !== undefined && parsed.data.container !== null) {
      return refuse('a code execution container', `${policyWhy(kind, ctx)}; ${OPEN_ONLY}`);
    }
  }

  if (kind !== 'open' && parsed.data.tools) {
    const tools: unknown[] = [];
    const originals = body.tools as Array<Record<string, unknown>>;
    for (const [index, tool] of parsed.data.tools.entries()) {
      const original = originals[index]!;
      const type = tool.type ?? undefined;
      if (type === undefined || CLIENT_TOOL.test(type) || CONTAINED_SERVER_TOOL.test(type)) {
        tools.push(original);
        continue;
      }
      const label = type.replace(/_\d{8}$/, '');
      if (WEB_TOOL.test(type)) {
        if (kind === 'no-network') return refuse(label, policyWhy(kind, ctx));
        const fitted = fitWebToolToPolicy(original, policy);
        if (!fitted.ok) return refuse(label, `${fitted.why} (set in ${ctx.policyFile})`);
        notes.push(`${label}: ${fitted.note}`);
        tools.push(fitted.tool);
        continue;
      }
      if (CODE_TOOL.test(type) || type === 'mcp_toolset') {
        return refuse(`${label} (${type})`, `${policyWhy(kind, ctx)}; ${OPEN_ONLY}`);
      }
      return refuse(`the server tool ${type}`, `${policyWhy(kind, ctx)}; ${UNKNOWN_OPEN_ONLY}`);
    }
    body.tools = tools;
  }

  const allowed = FEATURES_BY_KIND[kind];
  const kept = betas.filter((beta) => {
    const feature = FEATURE_BETAS.find(([prefix]) => beta.startsWith(prefix))?.[1];
    return feature === undefined || allowed.includes(feature);
  });
  if (kept.length !== betas.length) {
    notes.push(`betas dropped: ${betas.filter((b) => !kept.includes(b)).join(',')}`);
  }
  return { ok: true, body, betas: kept, notes };
}

/** The servers' URLs for the refusal, so the agent sees exactly what was asked for. */
function describeServers(servers: unknown[]): string {
  const urls = servers.map((s) =>
    s && typeof s === 'object' && typeof (s as { url?: unknown }).url === 'string'
      ? (s as { url: string }).url
      : '(no url)',
  );
  return urls.slice(0, 3).join(', ') + (urls.length > 3 ? `, and ${urls.length - 3} more` : '');
}
