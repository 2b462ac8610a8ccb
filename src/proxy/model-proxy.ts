import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Secrets } from '../env-file.js';
import { failure, type Failure, type FailureCause } from '../failure-notice.js';
import { logger } from '../logger.js';
import { forwardableHeaders, guardServer, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader, networkPolicyPath, policyForGroup } from './network-policy.js';
import { checkServerTools, serverToolsOpen } from './server-tools.js';
import { tapUsage, type TokenUsage } from './usage-tap.js';

export interface ModelProxyDeps {
  readSecrets(): Secrets; // per request, so .env edits apply at once
  recordUsage(groupFolder: string, inputTokens: number, outputTokens: number): void;
  tokensUsedToday(groupFolder: string): number;
  dailyTokenBudget(groupFolder: string): number | undefined;
  onBudgetExceeded?(groupFolder: string): void;
  /** What the group's last model call came to: a failure's cause, or null once one worked. */
  onOutcome?(groupFolder: string, outcome: Failure | null, credentials: string): void;
  configDir: string;
  envFile?: string;
  upstreamIdleTimeoutMs?: number;
}

const OAUTH_BETA = 'oauth-2025-04-20';
const DAY_MS = 86_400_000;
// Batches and file uploads are refused: they would spend tokens the budget cannot see.
const FORWARDED_PATH = /^\/v1\/(messages|messages\/count_tokens|models(\/[A-Za-z0-9._:-]+)?)$/;
const CHECKED_BODY_PATH = /^\/v1\/messages(\/count_tokens)?$/;
const MAX_BODY_MIB = 32;
const DROPPED_HEADERS = ['host', 'x-api-key', 'authorization', 'accept-encoding', 'cookie', 'anthropic-beta'];
// The SDK retries 429 and 5xx unless told not to; a spent budget won't heal in seconds.
const NO_RETRY = { 'x-should-retry': 'false' };
const ERROR_TYPES: Record<number, string> = {
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
};

/** The upstream's answer as a failure cause; null: none. */
export function upstreamCause(status: number): FailureCause | null {
  if (status < 400) return null;
  if (status === 401 || status === 403) return 'invalid-credentials';
  if (status < 500 && ![408, 409, 429].includes(status)) return 'invalid-request';
  return 'upstream';
}

/** Which credentials are in use, as a hash: a refused set stays refused until .env changes. */
export function credentialsId(secrets: Secrets): string {
  const { ANTHROPIC_API_KEY: key, CLAUDE_CODE_OAUTH_TOKEN: oauth, ANTHROPIC_AUTH_TOKEN: token } = secrets;
  if (!key && !oauth && !token) return '';
  const all = [key, oauth, token, secrets.ANTHROPIC_BASE_URL].join('\n');
  return crypto.createHash('sha256').update(all).digest('hex');
}

/** Anthropic's error shape, so the SDK shows the message. */
function apiError(res: http.ServerResponse, status: number, message: string, headers = {}): void {
  const type = ERROR_TYPES[status] ?? (status < 500 ? 'invalid_request_error' : 'api_error');
  sendBody(
    res,
    status,
    'application/json',
    JSON.stringify({ type: 'error', error: { type, message } }),
    headers,
  );
}

/** Past `maxBytes`, declared or received, it gives up and drains. */
function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer | 'too large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => {
      chunks.length = 0;
      req.resume();
      resolve('too large');
    };
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) return tooLarge();
    req.on('data', (chunk: Buffer) => ((size += chunk.length) > maxBytes ? tooLarge() : chunks.push(chunk)));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('close', () => resolve('aborted'));
  });
}

export function createModelProxyServer(folder: string, deps: ModelProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ folder, err }, 'model proxy request failed');
      apiError(res, 500, 'The model proxy failed to handle this request.');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const url = req.url?.startsWith('/') ? new URL(req.url, 'http://proxy') : undefined;
    const outcome: { usage?: TokenUsage; note?: string } = {};
    res.once('close', () => {
      const entry = { folder, method: req.method, path: url?.pathname, status: res.statusCode, ...outcome };
      const incomplete = !res.writableFinished || undefined;
      logger.info({ ...entry, ms: Date.now() - started, incomplete }, 'model proxy request');
    });
    let creds = '';
    const report = (cause: FailureCause | null) => deps.onOutcome?.(folder, cause && failure(cause), creds);
    const refuse = (status: number, message: string, headers: object = NO_RETRY) => {
      outcome.note = `refused: ${message}`;
      apiError(res, status, message, headers);
    };

    if (!url || !FORWARDED_PATH.test(url.pathname))
      return refuse(404, 'The model proxy only forwards the Messages API (/v1/messages).');
    const budget = deps.dailyTokenBudget(folder);
    if (budget !== undefined && deps.tokensUsedToday(folder) >= budget) {
      deps.onBudgetExceeded?.(folder);
      report('budget-spent');
      const message = `Daily token budget of ${budget} tokens for this group is spent; it resets at midnight UTC.`;
      const untilMidnight = Math.ceil((DAY_MS - (Date.now() % DAY_MS)) / 1000);
      return refuse(429, message, { ...NO_RETRY, 'retry-after': String(untilMidnight) });
    }
    const all = deps.readSecrets();
    creds = credentialsId(all);
    const { ANTHROPIC_API_KEY: key, CLAUDE_CODE_OAUTH_TOKEN: oauth, ...secrets } = all;
    const token = oauth || secrets.ANTHROPIC_AUTH_TOKEN;
    const auth = key ? { 'x-api-key': key } : token && { authorization: `Bearer ${token}` };
    const envFile = deps.envFile ?? '$NANOCLAW_HOME/.env';
    const noCredentials = `No model credentials configured: add ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN to ${envFile}`;
    if (!auth) {
      report('no-credentials');
      return refuse(401, noCredentials);
    }
    const baseUrl = secrets.ANTHROPIC_BASE_URL || 'https://api.anthropic.com';
    const base = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
    if (!base || !/^https?:$/.test(base.protocol))
      return refuse(500, 'ANTHROPIC_BASE_URL in .env is not a valid http(s) URL.');

    let betas = String(req.headers['anthropic-beta'] ?? '').match(/[^\s,]+/g) ?? ([] as string[]);
    let body: Buffer | undefined;
    const loaded = readPolicy();
    const policy = policyForGroup(loaded, folder);
    if (CHECKED_BODY_PATH.test(url.pathname) && !serverToolsOpen(policy)) {
      const encoding = req.headers['content-encoding'];
      if (encoding && encoding.toLowerCase() !== 'identity')
        return refuse(415, 'The model proxy only accepts uncompressed request bodies.');
      const read = await readBody(req, MAX_BODY_MIB * 1024 * 1024);
      if (read === 'aborted') return void res.destroy();
      if (read === 'too large') {
        const message = `The request body is larger than the model proxy accepts (${MAX_BODY_MIB} MiB).`;
        return refuse(413, message, { ...NO_RETRY, connection: 'close' });
      }
      const checked = checkServerTools(read.toString('utf8'), betas, policy, {
        invalidFile: loaded.source === 'invalid',
        policyFile: networkPolicyPath(deps.configDir),
      });
      if ('message' in checked) return refuse(checked.status, checked.message);
      body = Buffer.from(JSON.stringify(checked.body)); // re-serialised: no duplicate keys reach the upstream
      betas = checked.betas;
    }

    if (!key && oauth && !betas.includes(OAUTH_BETA)) betas.push(OAUTH_BETA);
    const headers = {
      ...forwardableHeaders(req.headers, DROPPED_HEADERS),
      'accept-encoding': 'identity', // usage is read from the stream, so it must be plain text
      ...auth,
      ...(betas.length > 0 && { 'anthropic-beta': betas.join(',') }),
      ...(body && { 'content-length': body.length }),
    };
    const target = new URL(base.pathname.replace(/\/+$/, '') + url.pathname + url.search, base);
    const upstream = (target.protocol === 'https:' ? https : http).request(target, {
      method: req.method,
      headers,
    });
    let timedOut = false;
    upstream.setTimeout(deps.upstreamIdleTimeoutMs ?? 10 * 60_000, () => {
      timedOut = true;
      upstream.destroy(new Error('upstream idle timeout'));
    });
    // Registered before relay's own listener, which writes these headers on.
    upstream.once('response', (upstreamRes) => {
      // The SDK retries a refused key for minutes; it won't heal before .env changes.
      if (upstreamCause(upstreamRes.statusCode ?? 0) === 'invalid-credentials')
        Object.assign(upstreamRes.headers, NO_RETRY);
    });
    relay(upstream, res, (upstreamRes) => {
      if (req.method === 'POST') report(upstreamCause(upstreamRes.statusCode ?? 502));
      const usage = tapUsage(upstreamRes);
      upstreamRes.on('close', () => {
        const used = (outcome.usage = usage());
        try {
          if (used) deps.recordUsage(folder, used.inputTokens, used.outputTokens);
        } catch (err) {
          logger.error({ folder, err }, 'recording model usage failed');
        }
        if (!upstreamRes.complete) outcome.note = 'upstream dropped mid-response';
      });
    });
    upstream.on('error', (err) => {
      outcome.note ??= `upstream error: ${err.message}`;
      report(timedOut ? 'timeout' : 'upstream');
      // Retrying a whole timeout ten times would keep the person waiting for hours.
      if (timedOut) refuse(504, 'The model API did not answer in time (model proxy timeout).');
      else apiError(res, 502, `The model proxy could not reach the model API (${base.host}): ${err.message}`);
    });
    if (body) upstream.end(body);
    else req.pipe(upstream);
  }

  return guardServer(server, folder, 'model proxy');
}
