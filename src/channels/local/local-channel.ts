import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { logger } from '../../logger.js';
import type { Channel, ChannelCallbacks } from '../../types.js';
import type { HostControl } from '../control.js';
import { ChannelSendError } from '../send-error.js';
import { CHAT_ROUTES, type ChatSummary, type History } from './api.js';
import { CONTROL_ROUTES, whatsappView } from './control-api.js';
import type { LocalFilesDeps } from './files.js';
import { HttpError, NO_STORE, sendJson } from './http-io.js';
import { loadOrCreateToken, tokensMatch } from './token.js';

export interface LocalChannelDeps {
  callbacks: ChannelCallbacks;
  history: History;
  assistantName: string;
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  status?(): unknown;
  /** Without these, their endpoints answer 503. */
  control?: HostControl;
  files?: LocalFilesDeps;
  /** 0 picks a free port (tests). */
  port: number;
  tokenFile: string;
  heartbeatMs?: number;
}

/** `params`: the path's `:name` segments; `control` and `files` throw a 503 when the host has none. */
export interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: [string, string];
  query: URLSearchParams;
  deps: LocalChannelDeps;
  control: HostControl;
  files: LocalFilesDeps;
}
export type Routes = Record<string, Record<string, (x: Ctx) => unknown>>;

const RELINK = 'reopen the link that `nanoclaw open` prints';
// The page and its libraries' browser builds as they are: no build step, nothing from the network.
const resolve = createRequire(import.meta.url).resolve;
const STATIC = new Map<string, string>([
  ['', 'page.html'],
  ...['page.js', 'page.css', 'panels.js', 'dom.js'].map((f): [string, string] => [f, f]),
  ['vendor/marked.js', resolve('marked')],
  ['vendor/purify.js', path.join(path.dirname(resolve('dompurify')), 'purify.es.mjs')],
]);
const TYPE: Record<string, string> = { '.html': 'text/html', '.css': 'text/css' };
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data: 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// JSON.stringify escapes newlines, so the data always fits on one `data:` line.
const frame = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** The built-in web chat for `local:<name>` chats: an HTTP API, an SSE stream and a page. */
export class LocalChannel implements Channel {
  readonly name = 'local';
  port = 0;
  token = '';
  private server?: http.Server;
  private readonly clients = new Set<http.ServerResponse>();
  /** Chats where the assistant is working, replayed to streams that connect mid-run. */
  private readonly typing = new Map<string, string>();
  private stopWatching?: () => void;
  private readonly routes = Object.entries<Routes[string]>({
    ...CHAT_ROUTES,
    ...CONTROL_ROUTES,
    'api/events': { GET: ({ res }) => this.subscribe(res) },
    '(?!api/)(.*)': { GET: ({ res, params }) => this.serveFile(res, params[0]) },
  }).map(([p, methods]) => [new RegExp(`^/${p.replaceAll(/:\w+/g, '([^/]+)')}/?$`), methods] as const);

  constructor(private readonly deps: LocalChannelDeps) {}

  async connect(): Promise<void> {
    if (this.server) return;
    this.token = loadOrCreateToken(this.deps.tokenFile);
    const server = http.createServer((req, res) =>
      this.handle(req, res).catch((err: unknown) => {
        if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
        // The path only: the start-up link's query string carries the token.
        logger.error({ err, path: req.url?.split('?')[0] }, 'local channel request failed');
        if (res.headersSent) res.destroy();
        else sendJson(res, 500, { error: 'internal error; see the nanoclaw log' });
      }),
    );
    // Loopback only: the API is for the person at this machine, never the network.
    server.listen(this.deps.port, '127.0.0.1');
    await once(server, 'listening');
    server.on('error', (err) => logger.error({ err }, 'local channel server error'));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const beat = setInterval(
      () => this.broadcast(': heartbeat\n\n'),
      this.deps.heartbeatMs ?? 15_000,
    ).unref();
    const c = this.deps.control;
    const unwatch = c?.whatsapp.onChange(() => this.broadcast(frame('whatsapp', whatsappView(c))));
    this.stopWatching = () => {
      clearInterval(beat);
      unwatch?.();
    };
    logger.info({ port: this.port }, 'local channel listening');
  }

  async disconnect(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.stopWatching?.();
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.typing.clear();
    const closed = new Promise((done) => server.close(done));
    server.closeAllConnections();
    await closed;
  }

  isConnected(): boolean {
    return this.server !== undefined;
  }

  ownsJid(jid: string): boolean {
    return jid.startsWith('local:');
  }

  async sendMessage(chat: string, text: string): Promise<void> {
    if (!this.server) throw new ChannelSendError('local chat is not running', 'transient');
    const timestamp = new Date().toISOString();
    this.broadcast(frame('message', { chat, text, timestamp, sender: this.deps.assistantName }));
  }

  async setTyping(chat: string, isTyping: boolean): Promise<void> {
    const event = frame('typing', { chat, isTyping });
    if (isTyping) this.typing.set(chat, event);
    else this.typing.delete(chat);
    this.broadcast(event);
  }

  /** The link to print at start-up; the page swaps the token for a cookie on first load. */
  url(): string {
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients) {
      // A client that stops reading is dropped rather than buffered without bound.
      if (res.writableLength <= 1 << 20) res.write(chunk);
      else {
        this.clients.delete(res);
        res.destroy();
      }
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { port, token } = this;
    const method = req.method ?? 'GET';
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
    // DNS rebinding: a hostile name resolving to 127.0.0.1 still carries its own name in Host.
    if (!hosts.includes(req.headers.host?.toLowerCase() ?? ''))
      throw new HttpError(403, `host not allowed: use http://127.0.0.1:${port}/`);
    // Browsers send Origin on cross-origin writes (another local port too); curl and `nanoclaw chat` don't.
    const origin = req.headers.origin?.toLowerCase();
    if (method !== 'GET' && origin !== undefined && !hosts.some((h) => origin === `http://${h}`))
      throw new HttpError(403, 'cross-origin request refused');
    const { pathname, searchParams: query } = new URL(req.url ?? '/', `http://${hosts[0]}`);
    // Cookies ignore ports, so the name carries it: two instances don't clash.
    const cookie = `nanoclaw_local_${port}`;
    // The start-up link's token is swapped for a cookie (a month: the token file persists) and
    // dropped from the address bar.
    const offered = pathname === '/' && method === 'GET' ? query.get('token') : null;
    if (offered !== null) {
      if (!tokensMatch(token, offered)) throw new HttpError(401, 'invalid token in link');
      const set = `${cookie}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${30 * 86400}`;
      return void res
        .writeHead(302, { ...NO_STORE, 'Set-Cookie': set, Location: '/', 'Referrer-Policy': 'no-referrer' })
        .end();
    }
    const credential =
      /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1] ??
      new RegExp(`(?:^|;)\\s*${cookie}\\s*=([^;]*)`).exec(req.headers.cookie ?? '')?.[1]?.trim();
    if (!tokensMatch(token, credential))
      throw new HttpError(
        401,
        credential === undefined
          ? `missing token: ${RELINK}, or send Authorization: Bearer <token>`
          : `wrong token: ${RELINK}`,
      );

    const [match, handlers] =
      this.routes.map(([re, h]) => [re.exec(pathname), h] as const).find(([m]) => m) ?? [];
    if (!match || !handlers) throw new HttpError(404, `no such endpoint: ${method} ${pathname}`);
    const handle = handlers[method];
    if (!handle) {
      res.setHeader('Allow', Object.keys(handlers).join(', '));
      throw new HttpError(405, `method ${method} not allowed on ${pathname}`);
    }
    const { deps } = this;
    const absent = (what: string): never => {
      throw new HttpError(503, `this host offers no ${what}`);
    };
    await handle({
      req,
      res,
      params: match.slice(1) as Ctx['params'],
      query,
      deps,
      get control() {
        return deps.control ?? absent('controls (stop, tasks, WhatsApp)');
      },
      get files() {
        return deps.files ?? absent('attachments');
      },
    });
  }

  private async serveFile(res: http.ServerResponse, pathname: string): Promise<void> {
    const file = STATIC.get(pathname);
    if (!file) throw new HttpError(404, `no such page: ${pathname}`);
    const body = await fs.readFile(new URL(file, import.meta.url));
    res
      .writeHead(200, {
        ...NO_STORE,
        'Content-Type': `${TYPE[path.extname(file)] ?? 'text/javascript'}; charset=utf-8`,
        // No inline script or style: the page's own files and the vendored libraries only.
        'Content-Security-Policy': CSP,
        'X-Frame-Options': 'DENY',
        'Referrer-Policy': 'no-referrer',
      })
      .end(body);
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
    });
    const c = this.deps.control;
    const whatsapp = c ? frame('whatsapp', whatsappView(c)) : '';
    res.write(`retry: 2000\n: connected\n\n${[...this.typing.values()].join('')}${whatsapp}`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
  }
}
