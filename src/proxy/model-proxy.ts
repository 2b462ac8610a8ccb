import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Secrets } from '../env-file.js';
import { failure, type Failure, type FailureCause } from '../failure-notice.js';
import { logger } from '../logger.js';
import { forwardableHeaders, relay, sendBody } from './http-util.js';
import { createNetworkPolicyReader } from './network-policy.js';
import { checkServerTools } from './server-tools.js';
import { tapUsage, type TokenUsage } from './usage-tap.js';

export interface ModelProxyDeps {
  readSecrets(): Secrets; // per request, so .env edits apply at once
  recordUsage(folder: string, inputTokens: number, outputTokens: number): void;
  tokensUsedToday(folder: string): number;
  dailyTokenBudget(folder: string): number | undefined;
  onBudgetExceeded?(folder: string): void;
  onOutcome?(folder: string, outcome: Failure | null, credentials: string): void;
  configDir: string;
  envFile?: string;
  upstreamIdleTimeoutMs?: number;
}

const MAX_BODY = 32 * 1024 * 1024;
// Batches and file uploads are refused: they would spend tokens the budget cannot see.
const FORWARDED = /^\/v1\/(messages|messages\/count_tokens|models(\/[A-Za-z0-9._:-]+)?)$/;
const DROPPED = ['host', 'x-api-key', 'authorization', 'accept-encoding', 'cookie', 'anthropic-beta'];
// The SDK retries 429, 401 and 5xx unless told not to; a spent budget or a refused key won't heal in seconds.
const NO_RETRY = { 'x-should-retry': 'false' };
const ERROR_TYPES: Record<number, string> = {
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
};

export function upstreamCause(status: number): FailureCause | null {
  if (status < 400) return null;
  if (status === 401 || status === 403) return 'invalid-credentials';
  return status < 500 && ![408, 409, 429].includes(status) ? 'invalid-request' : 'upstream';
}

// A refused set of credentials stays refused until .env changes.
export function credentialsId(s: Secrets): string {
  const all = [s.ANTHROPIC_API_KEY, s.CLAUDE_CODE_OAUTH_TOKEN, s.ANTHROPIC_AUTH_TOKEN];
  if (!all.some(Boolean)) return '';
  return crypto
    .createHash('sha256')
    .update([...all, s.ANTHROPIC_BASE_URL].join('\n'))
    .digest('hex');
}

function apiError(res: http.ServerResponse, status: number, message: string, headers = {}): void {
  const type = ERROR_TYPES[status] ?? (status < 500 ? 'invalid_request_error' : 'api_error');
  sendBody(res, status, { type: 'error', error: { type, message } }, headers);
}

function readBody(req: http.IncomingMessage): Promise<Buffer | 'too large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => {
      chunks.length = 0;
      req.resume(); // so the 413 gets read
      resolve('too large');
    };
    if (Number(req.headers['content-length']) > MAX_BODY) return tooLarge();
    req.on('data', (chunk: Buffer) => ((size += chunk.length) > MAX_BODY ? tooLarge() : chunks.push(chunk)));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('close', () => resolve('aborted'));
  });
}

export function createModelProxyServer(folder: string, deps: ModelProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  return http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ folder, err }, 'model proxy request failed');
      apiError(res, 500, 'The model proxy failed to handle this request.');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const url = req.url?.startsWith('/') ? new URL(req.url, 'http://proxy') : undefined;
    const log: { usage?: TokenUsage; note?: string } = {};
    res.once('close', () => {
      const entry = { folder, method: req.method, path: url?.pathname, status: res.statusCode, ...log };
      logger.info({ ...entry, ms: Date.now() - started }, 'model proxy request');
    });
    const secrets = deps.readSecrets();
    const report = (cause: FailureCause | null) =>
      deps.onOutcome?.(folder, cause && failure(cause), credentialsId(secrets));
    const refuse = (status: number, message: string, headers: object = NO_RETRY) => {
      log.note = `refused: ${message}`;
      apiError(res, status, message, headers);
    };

    if (!url || !FORWARDED.test(url.pathname))
      return refuse(404, 'The model proxy only forwards the Messages API (/v1/messages).');
    const budget = deps.dailyTokenBudget(folder);
    if (budget !== undefined && deps.tokensUsedToday(folder) >= budget) {
      deps.onBudgetExceeded?.(folder);
      report('budget-spent');
      return refuse(
        429,
        `Daily token budget of ${budget} tokens for this group is spent; it resets at midnight UTC.`,
      );
    }
    const { ANTHROPIC_API_KEY: key, CLAUDE_CODE_OAUTH_TOKEN: oauth, ANTHROPIC_BASE_URL: baseUrl } = secrets;
    const token = oauth || secrets.ANTHROPIC_AUTH_TOKEN;
    const auth = key ? { 'x-api-key': key } : token && { authorization: `Bearer ${token}` };
    if (!auth) {
      report('no-credentials');
      const envFile = deps.envFile ?? '$NANOCLAW_HOME/.env';
      return refuse(
        401,
        `No model credentials configured: add ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN to ${envFile}`,
      );
    }
    const base = URL.parse(baseUrl || 'https://api.anthropic.com');
    if (!base || !/^https?:$/.test(base.protocol))
      return refuse(500, 'ANTHROPIC_BASE_URL in .env is not a valid http(s) URL.');

    const read = await readBody(req);
    if (read === 'aborted') return void res.destroy();
    if (read === 'too large') {
      const message = 'The request body is larger than the model proxy accepts (32 MiB).';
      return refuse(413, message, { ...NO_RETRY, connection: 'close' });
    }
    const sent = String(req.headers['anthropic-beta'] ?? '').match(/[^\s,]+/g) ?? [];
    const checked = url.pathname.startsWith('/v1/messages')
      ? checkServerTools(read, sent, readPolicy(), folder, deps.configDir)
      : { body: read, betas: sent };
    if ('message' in checked) return refuse(checked.status, checked.message);
    const { body, betas } = checked;

    if (!key && oauth && !betas.includes('oauth-2025-04-20')) betas.push('oauth-2025-04-20');
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
        const used = (log.usage = usage());
        try {
          if (used) deps.recordUsage(folder, used.inputTokens, used.outputTokens);
        } catch (err) {
          logger.error({ folder, err }, 'recording model usage failed');
        }
        if (!up.complete) log.note = 'upstream dropped mid-response';
      });
    });
    upstream.on('error', (err) => {
      log.note ??= `upstream error: ${err.message}`;
      report(err === timeout ? 'timeout' : 'upstream');
      // Retrying a whole timeout ten times would keep the person waiting for hours.
      if (err === timeout) refuse(504, 'The model API did not answer in time (model proxy timeout).');
      else apiError(res, 502, `The model proxy could not reach the model API (${base.host}): ${err.message}`);
    });
    upstream.end(body);
  }
}
