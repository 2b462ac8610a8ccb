import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Secrets } from '../env-file.js';
import { failure, type Failure, type FailureCause } from '../failure-notice.js';
import { logger } from '../logger.js';
import { forwardableHeaders, parseJson, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader, policyForGroup } from './network-policy.js';
import { tapUsage } from './usage-tap.js';

export interface ModelProxyDeps {
  readSecrets(): Secrets; // per request, so .env edits apply at once
  recordUsage(folder: string, inputTokens: number, outputTokens: number): void;
  tokensUsedToday(folder: string): number;
  dailyTokenBudget(folder: string): number | undefined;
  onOutcome?(folder: string, outcome: Failure | null, credentials: string): void;
  configDir: string;
  upstreamIdleTimeoutMs?: number;
}

const MAX_BODY = 32 << 20;
const DROPPED = ['host', 'x-api-key', 'authorization', 'accept-encoding', 'cookie', 'anthropic-beta'];
// The SDK retries 429, 401 and 5xx unless told not to.
const NO_RETRY = { 'x-should-retry': 'false' };
const TYPES: Record<number, string> = {
  401: 'authentication_error',
  403: 'permission_error',
  429: 'rate_limit_error',
};
// Tools run by the sandbox, or that never leave Anthropic.
const CLIENT_TOOL =
  /^(custom|(bash|text_editor|computer|memory|advisor)_\d{8}|tool_search_tool_(regex|bm25)(_\d{8})?)$/;
const FEATURE_BETA = /^(web-search|web-fetch|code-execution|files-api|skills|mcp-client|mcp-servers)-/;
type Body = { tools?: { type?: string }[]; mcp_servers?: unknown; container?: unknown };

const serverSide = ({ tools, mcp_servers: mcp, container }: Body) => {
  const tool = tools?.map((t) => t?.type).find((type) => type && !CLIENT_TOOL.test(type));
  if (mcp != null && !(Array.isArray(mcp) && !mcp.length)) return 'the MCP connector';
  if (container != null) return 'a code execution container';
  return tool && `the server tool ${tool}`;
};

export const upstreamCause = (s: number): FailureCause | null =>
  s < 400
    ? null
    : s === 401 || s === 403
      ? 'invalid-credentials'
      : s < 500 && ![408, 409, 429].includes(s)
        ? 'invalid-request'
        : 'upstream';

// A refused set stays refused until .env changes.
export function credentialsId(s: Secrets): string {
  const all = [s.ANTHROPIC_API_KEY, s.CLAUDE_CODE_OAUTH_TOKEN, s.ANTHROPIC_AUTH_TOKEN];
  return all.some(Boolean) ? crypto.hash('sha256', [...all, s.ANTHROPIC_BASE_URL].join('\n')) : '';
}

export function spentBudget(deps: ModelProxyDeps, folder: string) {
  const budget = deps.dailyTokenBudget(folder);
  return budget !== undefined && deps.tokensUsedToday(folder) >= budget ? budget : undefined;
}

async function readBody(req: http.IncomingMessage) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    if ((size += chunk.length) > MAX_BODY) return;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function createModelProxyServer(folder: string, deps: ModelProxyDeps) {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  return http.createServer(async (req, res) => {
    const secrets = deps.readSecrets();
    const report = (cause: FailureCause | null) =>
      deps.onOutcome?.(folder, cause && failure(cause), credentialsId(secrets));
    const reply = (status: number, message: string, headers: object = NO_RETRY) => {
      logger.info({ folder, status, message }, 'model proxy refused');
      const type = TYPES[status] ?? (status < 500 ? 'invalid_request_error' : 'api_error');
      sendBody(res, status, { type: 'error', error: { type, message } }, headers);
    };
    try {
      // Not batches or files: they would spend tokens the budget cannot see.
      const url = new URL(req.url ?? '', 'http://proxy');
      if (!/^\/v1\/messages(\/count_tokens)?$/.test(url.pathname))
        return reply(404, 'The model proxy forwards only /v1/messages.');
      const budget = spentBudget(deps, folder);
      if (budget !== undefined) {
        report('budget-spent');
        return reply(429, `This group's daily budget of ${budget} tokens is spent until midnight UTC.`);
      }
      const { ANTHROPIC_API_KEY: key, CLAUDE_CODE_OAUTH_TOKEN: oauth } = secrets;
      const token = oauth || secrets.ANTHROPIC_AUTH_TOKEN;
      const auth = key ? { 'x-api-key': key } : token && { authorization: `Bearer ${token}` };
      if (!auth) {
        report('no-credentials');
        return reply(
          401,
          'No model credentials: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN in $NANOCLAW_HOME/.env.',
        );
      }
      if (Number(req.headers['content-length']) > MAX_BODY) {
        req.resume(); // so the 413 gets read
        return reply(413, 'The request body is over 32 MiB.', { ...NO_RETRY, connection: 'close' });
      }
      let body = await readBody(req);
      if (!body) return void res.destroy();
      let betas: string[] = String(req.headers['anthropic-beta'] ?? '').match(/[^\s,]+/g) ?? [];
      // Server tools need a fully open network policy. Re-serialised: no duplicate keys go upstream.
      const policy = policyForGroup(readPolicy(), folder);
      if (policy.noNetwork || policy.allow || policy.deny.length) {
        const json = parseJson(body.toString()) as Body | undefined;
        if (!(json instanceof Object) || (json.tools != null && !Array.isArray(json.tools)))
          return reply(400, 'The body must be JSON with a tools list.');
        const what = serverSide(json);
        const why = policy.noNetworkReason ?? 'its network policy is not fully open';
        if (what) return reply(403, `${what} is not allowed for this group: ${why}.`);
        body = Buffer.from(JSON.stringify(json));
        betas = betas.filter((b) => !FEATURE_BETA.test(b));
      }
      if (!key && oauth && !betas.includes('oauth-2025-04-20')) betas.push('oauth-2025-04-20');

      const base = new URL(secrets.ANTHROPIC_BASE_URL || 'https://api.anthropic.com');
      const to = new URL(base.pathname.replace(/\/+$/, '') + url.pathname + url.search, base);
      const headers = {
        ...forwardableHeaders(req.headers, DROPPED),
        'accept-encoding': 'identity', // usage is read from the stream
        ...auth,
        ...(betas.length > 0 && { 'anthropic-beta': betas.join(',') }),
        'content-length': body.length,
      };
      const upstream = (to.protocol === 'https:' ? https : http).request(to, { method: req.method, headers });
      const timeout = new Error('upstream idle timeout');
      upstream.setTimeout(deps.upstreamIdleTimeoutMs ?? 600_000, () => upstream.destroy(timeout));
      relay(upstream, res, (up) => {
        const cause = upstreamCause(up.statusCode ?? 502);
        if (cause === 'invalid-credentials') Object.assign(up.headers, NO_RETRY);
        if (req.method === 'POST') report(cause);
        const usage = tapUsage(up);
        up.on('close', () => {
          const used = usage();
          try {
            if (used) deps.recordUsage(folder, used.inputTokens, used.outputTokens);
          } catch (err) {
            logger.error({ folder, err }, 'recording model usage failed');
          }
        });
      });
      upstream.on('error', (err) => {
        report(err === timeout ? 'timeout' : 'upstream');
        if (err === timeout) reply(504, 'The model API did not answer in time.');
        else reply(502, `Could not reach the model API: ${err.message}`, {});
      });
      upstream.end(body);
    } catch (err) {
      logger.error({ folder, err }, 'model proxy request failed');
      reply(500, 'The model proxy failed.', {});
    }
  });
}
