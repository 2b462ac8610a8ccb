import crypto from 'node:crypto';
import http from 'node:http';
import { logger } from '../../logger.js';
import type { LocalApi } from './api.js';
import type { EventHub, LocalEvent } from './events.js';
import { sendError } from './http-io.js';
import { tokensMatch } from './token.js';

export interface LocalServerDeps {
  token: string;
  /** The port actually bound (known only after listen when 0 was asked for). */
  port(): number;
  api: LocalApi;
  events: EventHub;
  /** Events a new stream starts with (e.g. chats where the assistant is working right now). */
  currentState(): LocalEvent[];
  /** The chat page with `__CSP_NONCE__` placeholders. */
  pageTemplate: string;
}

/** Kept a month so a bookmarked page keeps working across restarts (the token file persists). */
const COOKIE_MAX_AGE_S = 30 * 24 * 3600;

/** Cookies ignore ports, so the name carries it: two instances on one machine don't clash. */
export function cookieName(port: number): string {
  return `nanoclaw_local_${port}`;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** DNS rebinding: a hostile name resolving to 127.0.0.1 still carries its own name in Host. */
function hostAllowed(host: string | undefined, port: number): boolean {
  const h = host?.toLowerCase();
  return h === `127.0.0.1:${port}` || h === `localhost:${port}`;
}

/** Browsers send Origin on cross-origin writes; a same-site page on another port is still refused. */
function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true; // non-browser clients (curl, `nanoclaw chat`)
  const o = origin.toLowerCase();
  return o === `http://127.0.0.1:${port}` || o === `http://localhost:${port}`;
}

function servePage(res: http.ServerResponse, template: string): void {
  const nonce = crypto.randomBytes(16).toString('base64');
  const html = template.replaceAll('__CSP_NONCE__', nonce);
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "connect-src 'self'",
      'img-src data:',
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

type Route =
  | { kind: 'page' }
  | { kind: 'events' }
  | { kind: 'status' }
  | { kind: 'chats' }
  | { kind: 'chat'; chat: string }
  | { kind: 'messages'; chat: string };

function matchRoute(pathname: string): Route | undefined {
  if (pathname === '/') return { kind: 'page' };
  if (pathname === '/api/events') return { kind: 'events' };
  if (pathname === '/api/status') return { kind: 'status' };
  if (pathname === '/api/chats') return { kind: 'chats' };
  const messages = /^\/api\/chats\/([^/]+)\/messages\/?$/.exec(pathname);
  if (messages?.[1]) return { kind: 'messages', chat: messages[1] };
  const chat = /^\/api\/chats\/([^/]+)\/?$/.exec(pathname);
  if (chat?.[1]) return { kind: 'chat', chat: chat[1] };
  return undefined;
}

/** The HTTP server: security checks first (Host, Origin, token), then routing to the API. */
export function createLocalServer(deps: LocalServerDeps): http.Server {
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const port = deps.port();
    const method = req.method ?? 'GET';
    if (!hostAllowed(req.headers.host, port)) {
      return sendError(res, 403, `host not allowed: use http://127.0.0.1:${port}/`);
    }
    if (method !== 'GET' && !originAllowed(req.headers.origin, port)) {
      return sendError(res, 403, 'cross-origin request refused');
    }
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);

    // The start-up link carries the token; swap it for a cookie and drop it from the address bar.
    const offered = url.pathname === '/' ? url.searchParams.get('token') : null;
    if (offered !== null && method === 'GET') {
      if (!tokensMatch(deps.token, offered)) return sendError(res, 401, 'invalid token in link');
      res.writeHead(302, {
        'Set-Cookie': `${cookieName(port)}=${deps.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${COOKIE_MAX_AGE_S}`,
        Location: '/',
        'Cache-Control': 'no-store',
        'Referrer-Policy': 'no-referrer',
      });
      return void res.end();
    }

    const credential = bearer(req.headers.authorization) ?? readCookie(req.headers.cookie, cookieName(port));
    if (!tokensMatch(deps.token, credential)) {
      return sendError(
        res,
        401,
        credential === undefined
          ? 'missing token: open the link printed by `nanoclaw start` or send Authorization: Bearer <token>'
          : 'wrong token: open the link printed by `nanoclaw start` again',
      );
    }

    const route = matchRoute(url.pathname);
    if (!route) return sendError(res, 404, `no such endpoint: ${method} ${url.pathname}`);
    const allowed = route.kind === 'messages' ? ['GET', 'POST'] : ['GET'];
    if (!allowed.includes(method)) {
      res.setHeader('Allow', allowed.join(', '));
      return sendError(res, 405, `method ${method} not allowed on ${url.pathname}`);
    }

    switch (route.kind) {
      case 'page':
        return servePage(res, deps.pageTemplate);
      case 'events':
        return deps.events.subscribe(req, res, deps.currentState());
      case 'status':
        return deps.api.status(res);
      case 'chats':
        return deps.api.listChats(res);
      case 'chat':
        return deps.api.getChat(res, route.chat);
      case 'messages':
        return method === 'POST'
          ? deps.api.postMessage(req, res, route.chat)
          : deps.api.getMessages(res, route.chat, url.searchParams);
    }
  };

  return http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // The path only: the start-up link's query string carries the token.
      logger.error({ err, path: (req.url ?? '').split('?')[0] }, 'local channel request failed');
      if (!res.headersSent) sendError(res, 500, 'internal error; see the nanoclaw log');
      else res.destroy();
    });
  });
}
