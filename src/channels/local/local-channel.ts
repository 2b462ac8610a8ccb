import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { logger } from '../../logger.js';
import { ChannelSendError } from '../send-error.js';
import type { Channel, ChannelCallbacks } from '../../types.js';
import type { HostControl } from '../control.js';
import { type ChatSummary, type History, getMessages, parseChat, postMessage } from './api.js';
import { CONTROL_ROUTES, whatsappView } from './control-api.js';
import { getFile, type LocalFilesDeps, postFile } from './files.js';
import { HttpError, sendJson } from './http-io.js';
import { loadOrCreateToken, tokensMatch } from './token.js';

export interface LocalChannelDeps {
  callbacks: ChannelCallbacks;
  history: History;
  assistantName: string;
  chats(): ChatSummary[];
  isRegistered(jid: string): boolean;
  status?(): unknown;
  /** Stop, tasks, typing and WhatsApp linking; without it those endpoints answer 503. */
  control?: HostControl;
  /** Attachments both ways; without it those endpoints answer 503. */
  files?: LocalFilesDeps;
  /** 0 picks a free port (tests). */
  port: number;
  tokenFile: string;
  heartbeatMs?: number;
}

/** A month, so a bookmarked page keeps working across restarts (the token file persists). */
const COOKIE_MAX_AGE_S = 30 * 24 * 3600;
const RELINK = 'reopen the link that `nanoclaw open` prints';
/** A client that stops reading is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

// The page and its libraries' browser builds, as they are: no build step, nothing from the network.
const resolve = createRequire(import.meta.url).resolve;
const FILES = new Map<string, [string, string]>([
  ['/', ['page.html', 'text/html']],
  ['/page.js', ['page.js', 'text/javascript']],
  ['/page.css', ['page.css', 'text/css']],
  ['/dom.js', ['dom.js', 'text/javascript']],
  ['/panels.js', ['panels.js', 'text/javascript']],
  ['/panels.css', ['panels.css', 'text/css']],
  ['/attach.js', ['attach.js', 'text/javascript']],
  ['/vendor/marked.js', [resolve('marked'), 'text/javascript']],
  ['/vendor/purify.js', [path.join(path.dirname(resolve('dompurify')), 'purify.es.mjs'), 'text/javascript']],
]);
const API = ['/api/events', '/api/status', '/api/chats'];

// JSON.stringify escapes newlines, so the data always fits on one `data:` line.
const frame = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** The built-in web chat for `local:<name>` chats: an HTTP API, an SSE stream and a page. */
export class LocalChannel implements Channel {
  readonly name = 'local';
  private server: http.Server | undefined;
  private boundPort = 0;
  private secret: string | undefined;
  private readonly clients = new Set<http.ServerResponse>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Chats where the assistant is working, replayed to streams that connect mid-run. */
  private readonly typing = new Map<string, string>();
  private unwatch: (() => void) | undefined;

  constructor(private readonly deps: LocalChannelDeps) {}

  async connect(): Promise<void> {
    if (this.server) return;
    const token = loadOrCreateToken(this.deps.tokenFile);
    const server = http.createServer((req, res) => {
      this.handle(req, res, token).catch((err: unknown) => {
        if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
        // The path only: the start-up link's query string carries the token.
        logger.error({ err, path: req.url?.split('?')[0] }, 'local channel request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error; see the nanoclaw log' });
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
    this.heartbeat = setInterval(() => this.broadcast(': heartbeat\n\n'), this.deps.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
    const control = this.deps.control;
    this.unwatch = control?.whatsapp.onChange(() => this.broadcast(frame('whatsapp', whatsappView(control))));
    logger.info({ port: this.boundPort }, 'local channel listening');
  }

  async disconnect(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.heartbeat);
    this.unwatch?.();
    this.unwatch = undefined;
    for (const res of this.clients) res.end();
    this.clients.clear();
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

  private broadcast(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength <= MAX_BUFFERED_BYTES) res.write(chunk);
      else {
        this.clients.delete(res);
        res.destroy();
      }
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, token: string): Promise<void> {
    const port = this.boundPort;
    const method = req.method ?? 'GET';
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
    // DNS rebinding: a hostile name resolving to 127.0.0.1 still carries its own name in Host.
    if (!hosts.includes(req.headers.host?.toLowerCase() ?? ''))
      throw new HttpError(403, `host not allowed: use http://127.0.0.1:${port}/`);
    // Browsers send Origin on cross-origin writes (another local port too); curl and `nanoclaw chat` don't.
    const origin = req.headers.origin?.toLowerCase();
    if (method !== 'GET' && origin !== undefined && !hosts.some((h) => origin === `http://${h}`))
      throw new HttpError(403, 'cross-origin request refused');
    const { pathname, searchParams } = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    // Cookies ignore ports, so the name carries it: two instances don't clash.
    const cookie = `nanoclaw_local_${port}`;

    // The start-up link's token is swapped for a cookie and dropped from the address bar.
    const offered = pathname === '/' && method === 'GET' ? searchParams.get('token') : null;
    if (offered !== null) {
      if (!tokensMatch(token, offered)) throw new HttpError(401, 'invalid token in link');
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
    if (!tokensMatch(token, credential))
      throw new HttpError(
        401,
        credential === undefined
          ? `missing token: ${RELINK}, or send Authorization: Bearer <token>`
          : `wrong token: ${RELINK}`,
      );

    const chatPath = /^\/api\/chats\/([^/]+)(\/messages|\/files)?\/?$/.exec(pathname);
    const filePath = /^\/api\/(files|media)\/([^/]+)\/([^/]+)$/.exec(pathname);
    const file = FILES.get(pathname);
    const route = CONTROL_ROUTES.map(([re, handlers]) => [re.exec(pathname), handlers] as const).find(
      ([match]) => match,
    );
    if (!file && !chatPath && !filePath && !API.includes(pathname) && !route)
      throw new HttpError(404, `no such endpoint: ${method} ${pathname}`);
    const sub = chatPath?.[2];
    const allowed = route
      ? Object.keys(route[1])
      : sub
        ? sub === '/files'
          ? ['POST']
          : ['GET', 'POST']
        : ['GET'];
    if (!allowed.includes(method)) {
      res.setHeader('Allow', allowed.join(', '));
      throw new HttpError(405, `method ${method} not allowed on ${pathname}`);
    }
    if (route) {
      if (!this.deps.control)
        throw new HttpError(503, 'this host offers no controls (stop, tasks, WhatsApp)');
      return route[1][method]!(req, res, this.deps.control, route[0]!.slice(1));
    }
    if (file) return this.serveFile(res, ...file);
    const files = this.deps.files;
    if ((filePath || sub === '/files') && !files) throw new HttpError(503, 'this host offers no attachments');
    if (filePath) return getFile(files!, res, filePath[1]!, filePath[2]!, filePath[3]!);
    if (pathname === '/api/events') return this.subscribe(res);
    if (pathname === '/api/status') return sendJson(res, 200, this.deps.status?.() ?? {});
    if (pathname === '/api/chats') {
      // Never other channels' conversations.
      const chats = this.deps.chats().filter((c) => this.ownsJid(c.jid));
      return sendJson(res, 200, {
        assistantName: this.deps.assistantName,
        chats,
        control: !!this.deps.control,
      });
    }
    const jid = parseChat(chatPath![1]!);
    if (!chatPath![2]) return sendJson(res, 200, { jid, registered: this.deps.isRegistered(jid) });
    if (sub === '/files') return postFile(files!, this.deps.callbacks, req, res, jid);
    if (method === 'POST') return postMessage(this.deps.callbacks, req, res, jid);
    getMessages(this.deps.history, res, jid, searchParams);
  }

  private async serveFile(res: http.ServerResponse, file: string, type: string): Promise<void> {
    const body = await fs.promises.readFile(new URL(file, import.meta.url));
    res.writeHead(200, {
      'Content-Type': `${type}; charset=utf-8`,
      // No inline script or style: the page's own files and the vendored libraries only.
      'Content-Security-Policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data: 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-store',
    });
    res.end(body);
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    const control = this.deps.control;
    const whatsapp = control ? frame('whatsapp', whatsappView(control)) : '';
    res.write(`retry: 2000\n: connected\n\n${[...this.typing.values()].join('')}${whatsapp}`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
  }
}
