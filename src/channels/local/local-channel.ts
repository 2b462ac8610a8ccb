import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../../logger.js';
import type { Channel } from '../../types.js';
import { type ApiDeps, type ChatSummary, LOCAL_JID_PREFIX, LocalApi, parseChat } from './api.js';
import { EventHub, type LocalEvent } from './events.js';
import { sendError, sendJson } from './http-io.js';
import { loadOrCreateToken, tokensMatch } from './token.js';

export interface LocalChannelDeps extends ApiDeps {
  assistantName: string;
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  status?(): unknown;
  /** 0 picks a free port (tests). */
  port: number;
  tokenFile: string;
  heartbeatMs?: number;
}

/** A month, so a bookmarked page keeps working across restarts (the token file persists). */
const COOKIE_MAX_AGE_S = 30 * 24 * 3600;
const RELINK = 'open the link printed by `nanoclaw start`';

/** One self-contained page (no external resources), kept as three files. */
function loadPage(): string {
  const read = (name: string) => fs.readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
  return read('page.html')
    .replace('/* page.css */', () => read('page.css'))
    .replace('// page.js', () => read('page.js'));
}

function servePage(res: http.ServerResponse, page: string): void {
  const nonce = crypto.randomBytes(16).toString('base64');
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  });
  res.end(page.replaceAll('__CSP_NONCE__', nonce));
}

const ROUTES = new Map<string, 'page' | 'events' | 'status' | 'chats'>([
  ['/', 'page'],
  ['/api/events', 'events'],
  ['/api/status', 'status'],
  ['/api/chats', 'chats'],
]);

/** The built-in web chat for `local:<name>` chats: an HTTP API, an SSE stream and a page. */
export class LocalChannel implements Channel {
  readonly name = 'local';
  private server: http.Server | undefined;
  private readonly events: EventHub;
  private readonly api: LocalApi;
  private page = '';
  private boundPort = 0;
  private secret: string | undefined;
  /** Chats where the assistant is working, replayed to streams that connect mid-run. */
  private readonly typing = new Map<string, LocalEvent>();

  constructor(private readonly deps: LocalChannelDeps) {
    this.events = new EventHub(deps.heartbeatMs);
    this.api = new LocalApi(deps);
  }

  async connect(): Promise<void> {
    if (this.server) return;
    const token = loadOrCreateToken(this.deps.tokenFile);
    this.page = loadPage();
    const server = http.createServer((req, res) => {
      this.handle(req, res, token).catch((err: unknown) => {
        // The path only: the start-up link's query string carries the token.
        logger.error({ err, path: req.url?.split('?')[0] }, 'local channel request failed');
        if (!res.headersSent) sendError(res, 500, 'internal error; see the nanoclaw log');
        else res.destroy();
      });
    });
    // Loopback only: the API is for the person at this machine, never the network.
    server.listen(this.deps.port, '127.0.0.1');
    await once(server, 'listening');
    server.on('error', (err) => logger.error({ err }, 'local channel server error'));
    this.server = server;
    this.secret = token;
    this.boundPort = (server.address() as AddressInfo).port;
    this.events.start();
    logger.info({ port: this.boundPort }, 'local channel listening');
  }

  async disconnect(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.events.stop();
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
    await closed;
    this.typing.clear();
    logger.info({ port: this.boundPort }, 'local channel stopped');
  }

  isConnected(): boolean {
    return this.server !== undefined;
  }

  ownsJid(jid: string): boolean {
    return jid.startsWith(LOCAL_JID_PREFIX);
  }

  async sendMessage(chat: string, text: string): Promise<void> {
    const timestamp = new Date().toISOString();
    this.events.publish({
      type: 'message',
      data: { chat, text, timestamp, sender: this.deps.assistantName },
    });
  }

  async setTyping(chat: string, isTyping: boolean): Promise<void> {
    const event: LocalEvent = { type: 'typing', data: { chat, isTyping } };
    if (isTyping) this.typing.set(chat, event);
    else this.typing.delete(chat);
    this.events.publish(event);
  }

  get port(): number {
    return this.boundPort;
  }

  get token(): string {
    if (this.secret === undefined) throw new Error('local channel is not connected yet');
    return this.secret;
  }

  /** The link to print at start-up; the page swaps the token for a cookie on first load. */
  url(): string {
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, token: string): Promise<void> {
    const port = this.boundPort;
    const method = req.method ?? 'GET';
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
    // DNS rebinding: a hostile name resolving to 127.0.0.1 still carries its own name in Host.
    if (!hosts.includes(req.headers.host?.toLowerCase() ?? ''))
      return sendError(res, 403, `host not allowed: use http://127.0.0.1:${port}/`);
    // Browsers send Origin on cross-origin writes (another local port too); curl and `nanoclaw chat` don't.
    const origin = req.headers.origin?.toLowerCase();
    if (method !== 'GET' && origin !== undefined && !hosts.some((h) => origin === `http://${h}`))
      return sendError(res, 403, 'cross-origin request refused');
    const { pathname, searchParams } = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    // Cookies ignore ports, so the name carries it: two instances don't clash.
    const cookie = `nanoclaw_local_${port}`;

    // The start-up link's token is swapped for a cookie and dropped from the address bar.
    const offered = pathname === '/' && method === 'GET' ? searchParams.get('token') : null;
    if (offered !== null) {
      if (!tokensMatch(token, offered)) return sendError(res, 401, 'invalid token in link');
      res.writeHead(302, {
        'Set-Cookie': `${cookie}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${COOKIE_MAX_AGE_S}`,
        Location: '/',
        'Cache-Control': 'no-store',
        'Referrer-Policy': 'no-referrer',
      });
      return void res.end();
    }
    const credential =
      /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1] ??
      new RegExp(`(?:^|;)\\s*${cookie}\\s*=([^;]*)`).exec(req.headers.cookie ?? '')?.[1]?.trim();
    if (!tokensMatch(token, credential)) {
      const problem =
        credential === undefined
          ? `missing token: ${RELINK} or send Authorization: Bearer <token>`
          : `wrong token: ${RELINK} again`;
      return sendError(res, 401, problem);
    }

    const chatPath = /^\/api\/chats\/([^/]+)(\/messages)?\/?$/.exec(pathname);
    const route = ROUTES.get(pathname) ?? (chatPath && (chatPath[2] ? 'messages' : 'chat'));
    if (!route) return sendError(res, 404, `no such endpoint: ${method} ${pathname}`);
    const allowed = route === 'messages' ? ['GET', 'POST'] : ['GET'];
    if (!allowed.includes(method)) {
      res.setHeader('Allow', allowed.join(', '));
      return sendError(res, 405, `method ${method} not allowed on ${pathname}`);
    }
    if (route === 'page') return servePage(res, this.page);
    if (route === 'events') return this.events.subscribe(res, [...this.typing.values()]);
    if (route === 'status') return sendJson(res, 200, this.deps.status?.() ?? {});
    if (route === 'chats') {
      // Never other channels' conversations.
      const chats = this.deps.chats().filter((c) => this.ownsJid(c.jid));
      return sendJson(res, 200, { assistantName: this.deps.assistantName, chats });
    }
    const chat = parseChat(chatPath?.[1] ?? '');
    if ('error' in chat) return sendError(res, 400, chat.error);
    if (route === 'chat')
      return sendJson(res, 200, { jid: chat.jid, registered: this.deps.isRegistered(chat.jid) });
    if (method === 'POST') return this.api.postMessage(req, res, chat.jid);
    this.api.getMessages(res, chat.jid, searchParams);
  }
}
