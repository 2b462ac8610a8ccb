import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { logger } from '../../logger.js';
import type { Channel } from '../../types.js';
import { ChannelSendError } from '../send-error.js';
import {
  type Ctx,
  fail,
  HttpError,
  type LocalChannelDeps,
  NO_STORE,
  ROUTES,
  sendJson,
  whatsappView,
} from './api.js';
import { loadOrCreateToken, tokensMatch } from './token.js';

export type { LocalChannelDeps };

// No build step, nothing from the network.
const resolve = createRequire(import.meta.url).resolve;
const STATIC = new Map([
  ['', 'page.html'],
  ['page.js', 'page.js'],
  ['page.css', 'page.css'],
  ['vendor/marked.js', resolve('marked')],
  ['vendor/purify.js', path.join(path.dirname(resolve('dompurify')), 'purify.es.mjs')],
]);
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data: 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** Stands in for what the host lacks: any use answers 503. */
const absent = (what: string) =>
  new Proxy({}, { get: () => fail(503, `this host offers no ${what}`) }) as never;
const frame = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** The built-in web chat: an HTTP API, an SSE stream and a page. */
export class LocalChannel implements Channel {
  readonly name = 'local';
  port = 0;
  token = '';
  private server?: http.Server;
  private readonly clients = new Set<http.ServerResponse>();
  /** Replayed to streams that connect mid-run. */
  private readonly typing = new Map<string, string>();
  private stopTimers?: () => void;
  private readonly routes = Object.entries<(x: Ctx) => unknown>({
    ...ROUTES,
    'GET api/events': ({ res }) => this.subscribe(res),
    'GET (?!api/)(.*)': ({ res, params }) => this.serveFile(res, params[0]),
  }).map(([key, run]) => {
    const [method, p] = key.split(' ');
    return { method, run, re: new RegExp(`^/${p!.replaceAll(/:\w+/g, '([^/]+)')}/?$`) };
  });

  constructor(private readonly deps: LocalChannelDeps) {}

  async connect(): Promise<void> {
    if (this.server) return;
    this.token = loadOrCreateToken(this.deps.tokenFile);
    const server = http.createServer((req, res) =>
      this.handle(req, res).catch((err: unknown) => {
        const known = err instanceof HttpError;
        // The path only: the start-up link's query carries the token.
        if (!known) logger.error({ err, path: req.url?.split('?')[0] }, 'local request failed');
        if (res.headersSent) return res.destroy();
        sendJson(res, known ? err.status : 500, {
          error: known ? err.message : 'internal error; see the log',
        });
      }),
    );
    server.listen(this.deps.port, '127.0.0.1');
    await once(server, 'listening');
    server.on('error', (err) => logger.error({ err }, 'local channel server error'));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const beat = setInterval(() => this.broadcast(': heartbeat\n\n'), this.deps.heartbeatMs ?? 15e3);
    beat.unref();
    const c = this.deps.control;
    const unwatch = c?.whatsapp.onChange(() => this.broadcast(frame('whatsapp', whatsappView(c))));
    this.stopTimers = () => (clearInterval(beat), unwatch?.());
  }

  async disconnect(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.stopTimers?.();
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.typing.clear();
    const closed = new Promise((done) => server.close(done));
    server.closeAllConnections();
    await closed;
  }

  isConnected(): boolean {
    return !!this.server;
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

  url(): string {
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients)
      if (res.writableLength <= 1 << 20) res.write(chunk);
      else {
        // A client that stops reading is dropped.
        this.clients.delete(res);
        res.destroy();
      }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { port, token, deps } = this;
    const method = req.method!;
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
    // Against DNS rebinding.
    if (!hosts.includes(req.headers.host?.toLowerCase() ?? ''))
      fail(403, `host not allowed: use http://127.0.0.1:${port}/`);
    const origin = req.headers.origin?.toLowerCase();
    if (method !== 'GET' && origin !== undefined && !hosts.some((h) => origin === `http://${h}`))
      fail(403, 'cross-origin request refused');
    const { pathname, searchParams: query } = new URL(req.url!, 'http://localhost');
    // Cookies ignore ports: the name carries it.
    const cookie = `nanoclaw_local_${port}`;
    const offered = pathname === '/' && method === 'GET' ? query.get('token') : null;
    if (offered !== null) {
      if (!tokensMatch(token, offered)) fail(401, 'invalid token in link');
      const set = `${cookie}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000`;
      const headers = { ...NO_STORE, 'Set-Cookie': set, Location: '/', 'Referrer-Policy': 'no-referrer' };
      return void res.writeHead(302, headers).end();
    }
    const credential =
      /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1] ??
      new RegExp(`(?:^|;)\\s*${cookie}=([^;]*)`).exec(req.headers.cookie ?? '')?.[1];
    if (!tokensMatch(token, credential))
      fail(401, `${credential ? 'wrong' : 'missing'} token: reopen the link that \`nanoclaw open\` prints`);

    const routes = this.routes.filter((r) => r.re.test(pathname));
    const route = routes.find((r) => r.method === method);
    if (!route) {
      if (!routes.length) fail(404, `no such endpoint: ${pathname}`);
      res.setHeader('Allow', routes.map((r) => r.method).join(', '));
      fail(405, `${method} not allowed here`);
    }
    const out = await route.run({
      req,
      res,
      query,
      deps,
      params: route.re.exec(pathname)!.slice(1) as Ctx['params'],
      control: deps.control ?? absent('controls'),
      files: deps.files ?? absent('files'),
    });
    if (!res.headersSent) sendJson(res, res.statusCode, out);
  }

  private async serveFile(res: http.ServerResponse, name: string): Promise<void> {
    const file = STATIC.get(name);
    if (!file) fail(404, `no such page: ${name}`);
    res
      .writeHead(200, {
        ...NO_STORE,
        'Content-Type': `text/${{ '.html': 'html', '.css': 'css' }[path.extname(file)] ?? 'javascript'}; charset=utf-8`,
        'Content-Security-Policy': CSP,
      })
      .end(await fs.readFile(new URL(file, import.meta.url)));
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, { ...NO_STORE, 'Content-Type': 'text/event-stream; charset=utf-8' });
    const c = this.deps.control;
    res.write(`retry: 2000\n\n${[...this.typing.values()].join('')}`);
    if (c) res.write(frame('whatsapp', whatsappView(c)));
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
  }
}
