import http from 'node:http';
import https from 'node:https';
import type { Secrets } from '../env-file.js';
import { logger } from '../logger.js';
import { forwardableHeaders, readBody, sendBody } from './http-util.js';
import { createNetworkPolicyReader, networkPolicyPath, type LoadedNetworkPolicy } from './network-policy.js';
import { checkServerTools, serverToolsUnrestricted } from './server-tools.js';
import { UsageTap, type TokenUsage } from './usage-tap.js';

export interface ModelProxyDeps {
  /** Called per request so that edits to .env apply without a restart. */
  readSecrets(): Secrets;
  recordUsage(groupFolder: string, inputTokens: number, outputTokens: number): void;
  tokensUsedToday(groupFolder: string): number;
  dailyTokenBudget(groupFolder: string): number | undefined;
  onBudgetExceeded(groupFolder: string): void;
  /** Holds network-policy.json, which also bounds the model's server-side tools (server-tools.ts). */
  configDir: string;
  /** Named in the "no credentials" error so the user knows which file to edit. */
  envFile?: string;
  /** An upstream silent for this long is dropped (default 10 minutes). */
  upstreamIdleTimeoutMs?: number;
}

const DEFAULT_BASE_URL = 'https://api.anthropic.com';
const OAUTH_BETA = 'oauth-2025-04-20';
const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;

/**
 * What the sandbox may call with the real credential: the Messages API (streaming or not), token
 * counting and the model list. Batches and file uploads are refused because they would spend
 * tokens the proxy cannot see and so escape the daily budget.
 */
const FORWARDED_PATH = /^\/v1\/(messages|messages\/count_tokens|models(\/[A-Za-z0-9._:-]+)?)$/;

/** Requests whose body can name server tools, and so is read and checked for restricted groups. */
const CHECKED_BODY_PATH = /^\/v1\/messages(\/count_tokens)?$/;

/** Anthropic's own limit for a Messages API request; the proxy buffers no more than that. */
const MAX_CHECKED_BODY_BYTES = 32 * 1024 * 1024;

/** The incoming credential (a placeholder from the sandbox) is dropped and replaced. */
const DROPPED_REQUEST_HEADERS = ['host', 'x-api-key', 'authorization', 'accept-encoding', 'cookie'];

type Credential = { header: 'x-api-key' | 'authorization'; value: string; oauth: boolean };

function pickCredential(secrets: Secrets): Credential | undefined {
  if (secrets.ANTHROPIC_API_KEY)
    return { header: 'x-api-key', value: secrets.ANTHROPIC_API_KEY, oauth: false };
  if (secrets.CLAUDE_CODE_OAUTH_TOKEN) {
    return { header: 'authorization', value: `Bearer ${secrets.CLAUDE_CODE_OAUTH_TOKEN}`, oauth: true };
  }
  if (secrets.ANTHROPIC_AUTH_TOKEN) {
    return { header: 'authorization', value: `Bearer ${secrets.ANTHROPIC_AUTH_TOKEN}`, oauth: false };
  }
  return undefined;
}

/** Anthropic's error shape, so the SDK in the sandbox shows the message to the agent and the user. */
function sendApiError(
  res: http.ServerResponse,
  status: number,
  type: string,
  message: string,
  extraHeaders: http.OutgoingHttpHeaders = {},
): void {
  if (!res.headersSent) {
    // The SDK retries 429/5xx unless told not to; a spent budget or missing key won't heal in seconds.
    for (const [name, value] of Object.entries(extraHeaders))
      if (value !== undefined) res.setHeader(name, value);
  }
  sendBody(res, status, 'application/json', JSON.stringify({ type: 'error', error: { type, message } }));
}

function secondsUntilUtcMidnight(now = new Date()): number {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - now.getTime()) / 1000));
}

/**
 * The model proxy for one group: an HTTP server (listening on that group's api.sock) that forwards
 * Messages API calls to the real upstream with the real credential, streams answers back as they
 * arrive, counts tokens and enforces the group's daily budget. The group is known from the socket,
 * never from anything the sandbox sends.
 */
export function createModelProxyServer(folder: string, deps: ModelProxyDeps): http.Server {
  const readPolicy = createNetworkPolicyReader(deps.configDir);
  const server = http.createServer((req, res) => {
    try {
      handleRequest(folder, deps, readPolicy, req, res);
    } catch (err) {
      logger.error({ folder, err }, 'model proxy request failed');
      sendApiError(res, 500, 'api_error', 'The model proxy failed to handle this request.');
    }
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('error', (err) => logger.error({ folder, err }, 'model proxy server error'));
  return server;
}

function handleRequest(
  folder: string,
  deps: ModelProxyDeps,
  readPolicy: () => LoadedNetworkPolicy,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): void {
  const started = Date.now();
  const rawUrl = req.url ?? '';
  const incoming = rawUrl.startsWith('/') ? new URL(rawUrl, 'http://proxy') : undefined;
  const outcome: { usage?: TokenUsage; note?: string } = {};
  res.once('close', () => {
    logger.info(
      {
        folder,
        method: req.method,
        path: incoming?.pathname ?? '(invalid)',
        status: res.statusCode,
        inputTokens: outcome.usage?.inputTokens ?? 0,
        outputTokens: outcome.usage?.outputTokens ?? 0,
        ms: Date.now() - started,
        ...(outcome.note ? { note: outcome.note } : {}),
        ...(res.writableFinished ? {} : { incomplete: true }),
      },
      'model proxy request',
    );
  });

  if (!incoming || !FORWARDED_PATH.test(incoming.pathname)) {
    sendApiError(
      res,
      404,
      'not_found_error',
      'The model proxy only forwards the Messages API (/v1/messages).',
    );
    return;
  }

  const budget = deps.dailyTokenBudget(folder);
  if (budget !== undefined && deps.tokensUsedToday(folder) >= budget) {
    outcome.note = 'budget spent';
    try {
      deps.onBudgetExceeded(folder);
    } catch (err) {
      logger.error({ folder, err }, 'budget notification failed');
    }
    sendApiError(
      res,
      429,
      'rate_limit_error',
      `Daily token budget of ${budget} tokens for this group is spent; it resets at midnight UTC.`,
      { 'retry-after': String(secondsUntilUtcMidnight()), 'x-should-retry': 'false' },
    );
    return;
  }

  const secrets = deps.readSecrets();
  const credential = pickCredential(secrets);
  if (!credential) {
    const envFile = deps.envFile ?? '$NANOCLAW_HOME/.env';
    sendApiError(
      res,
      401,
      'authentication_error',
      `No model credentials configured: add ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN to ${envFile}`,
      { 'x-should-retry': 'false' },
    );
    return;
  }

  let base: URL;
  try {
    base = new URL(secrets.ANTHROPIC_BASE_URL || DEFAULT_BASE_URL);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    sendApiError(res, 500, 'api_error', 'ANTHROPIC_BASE_URL in .env is not a valid http(s) URL.');
    return;
  }

  const call: UpstreamCall = { folder, deps, req, res, incoming, base, credential, outcome };
  const loaded = readPolicy();
  if (!CHECKED_BODY_PATH.test(incoming.pathname) || serverToolsUnrestricted(loaded, folder)) {
    forward(call);
    return;
  }
  forwardChecked(call, loaded).catch((err: unknown) => {
    logger.error({ folder, err }, 'model proxy request check failed');
    sendApiError(res, 500, 'api_error', 'The model proxy failed to handle this request.');
  });
}

interface UpstreamCall {
  folder: string;
  deps: ModelProxyDeps;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  incoming: URL;
  base: URL;
  credential: Credential;
  outcome: { usage?: TokenUsage; note?: string };
}

function betaList(value: string | string[] | undefined): string[] {
  return (Array.isArray(value) ? value.join(',') : (value ?? ''))
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
}

/**
 * For a group whose network policy is not fully open: reads the body, holds its server tools to the
 * policy (server-tools.ts) and forwards the checked body, re-serialised so that the upstream cannot
 * read anything else into it (duplicate keys, for one).
 */
async function forwardChecked(call: UpstreamCall, loaded: LoadedNetworkPolicy): Promise<void> {
  const { req, res, outcome } = call;
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    outcome.note = `refused: content-encoding ${encoding}`;
    sendApiError(
      res,
      415,
      'invalid_request_error',
      'The model proxy only accepts uncompressed request bodies.',
    );
    return;
  }
  const read = await readBody(req, MAX_CHECKED_BODY_BYTES);
  if (!read.ok) {
    outcome.note = `request body ${read.problem}`;
    if (read.problem === 'aborted') res.destroy();
    else {
      sendApiError(
        res,
        413,
        'request_too_large',
        `The request body is larger than the model proxy accepts (${MAX_CHECKED_BODY_BYTES / 1024 / 1024} MiB).`,
        { connection: 'close' },
      );
    }
    return;
  }
  let json: unknown;
  try {
    json = JSON.parse(read.body.toString('utf8'));
  } catch {
    outcome.note = 'refused: body is not JSON';
    sendApiError(
      res,
      400,
      'invalid_request_error',
      'The model proxy could not read this request: the body is not valid JSON.',
    );
    return;
  }
  const decision = checkServerTools(json, betaList(req.headers['anthropic-beta']), {
    folder: call.folder,
    loaded,
    policyFile: networkPolicyPath(call.deps.configDir),
  });
  if (!decision.ok) {
    outcome.note = `refused: ${decision.message}`;
    sendApiError(res, decision.status, decision.type, decision.message, { 'x-should-retry': 'false' });
    return;
  }
  if (decision.notes.length > 0) outcome.note = decision.notes.join('; ');
  forward(call, { body: Buffer.from(JSON.stringify(decision.body)), betas: decision.betas });
}

/** Sends the request upstream with the real credential and streams the answer back as it comes. */
function forward(call: UpstreamCall, checked?: { body: Buffer; betas: string[] }): void {
  const { folder, deps, req, res, incoming, base, credential, outcome } = call;
  const headers = forwardableHeaders(req.headers, DROPPED_REQUEST_HEADERS);
  headers['accept-encoding'] = 'identity'; // usage is read from the stream, so it must be plain text
  headers[credential.header] = credential.value;
  const betas = checked ? checked.betas : betaList(req.headers['anthropic-beta']);
  if (credential.oauth && !betas.includes(OAUTH_BETA)) betas.push(OAUTH_BETA);
  if (checked || credential.oauth) {
    if (betas.length > 0) headers['anthropic-beta'] = betas.join(',');
    else delete headers['anthropic-beta'];
  }
  if (checked) headers['content-length'] = checked.body.length;

  const prefix = base.pathname.replace(/\/+$/, '');
  const client = base.protocol === 'https:' ? https : http;
  const upstream = client.request({
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: base.port || undefined,
    method: req.method,
    path: prefix + incoming.pathname + incoming.search,
    headers,
  });
  upstream.setTimeout(deps.upstreamIdleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => {
    upstream.destroy(new Error('upstream idle timeout'));
  });

  upstream.on('response', (upstreamRes) => {
    const tap = new UsageTap(upstreamRes.headers['content-type'], upstreamRes.headers['content-encoding']);
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      outcome.usage = tap.finish();
      if (!outcome.usage) return;
      try {
        deps.recordUsage(folder, outcome.usage.inputTokens, outcome.usage.outputTokens);
      } catch (err) {
        logger.error({ folder, err }, 'recording model usage failed');
      }
    };
    try {
      res.writeHead(upstreamRes.statusCode ?? 502, forwardableHeaders(upstreamRes.headers));
      res.flushHeaders(); // the SDK starts reading before the first event arrives
    } catch (err) {
      logger.error({ folder, err }, 'model proxy could not start the response');
      upstream.destroy();
      res.destroy();
      return;
    }
    upstreamRes.on('data', (chunk: Buffer) => tap.write(chunk));
    upstreamRes.on('end', record);
    upstreamRes.on('error', () => undefined); // handled by 'close' below
    upstreamRes.on('close', () => {
      if (upstreamRes.complete) return;
      // Tokens already streamed were spent; count them. Then drop the client connection: ending the
      // response cleanly would let the SDK take a truncated answer as complete.
      record();
      outcome.note = 'upstream dropped mid-response';
      res.destroy();
    });
    upstreamRes.pipe(res);
  });

  upstream.on('error', (err) => {
    if (res.headersSent) {
      outcome.note ??= `upstream error after response start: ${err.message}`;
      res.destroy();
      return;
    }
    const timedOut = err.message === 'upstream idle timeout';
    outcome.note = `upstream unreachable: ${err.message}`;
    sendApiError(
      res,
      timedOut ? 504 : 502,
      'api_error',
      timedOut
        ? 'The model API did not answer in time (model proxy timeout).'
        : `The model proxy could not reach the model API (${base.host}): ${err.message}`,
      // The upstream already had the whole timeout: the SDK retrying it ten times more would keep
      // the person waiting for hours. The run fails, the person is told, the host retries later.
      timedOut ? { 'x-should-retry': 'false' } : {},
    );
  });

  // The client went away (sandbox stopped, request cancelled): stop the upstream work too.
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  if (checked) {
    upstream.end(checked.body);
    return;
  }
  req.on('error', () => upstream.destroy());
  req.pipe(upstream);
}
