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
/** For what the host lacks: any use answers 503. */
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
    'GET api/events': ({ res }) => {
      res.writeHead(200, { ...NO_STORE, 'Content-Type': 'text/event-stream; charset=utf-8' });
      res.write(`retry: 2000\n\n${[...this.typing.values()].join('')}`);
      if (this.deps.control) res.write(frame('whatsapp', whatsappView(this.deps.control)));
      this.clients.add(res);
      res.on('close', () => this.clients.delete(res));
    },
    'GET (?!api/)(.*)': async ({ res, params }) => {
      const file = STATIC.get(params[0]) ?? fail(404, `no such page: ${params[0]}`);
      const type = { '.html': 'html', '.css': 'css' }[path.extname(file)] ?? 'javascript';
      const headers = { 'Content-Type': `text/${type}; charset=utf-8`, 'Content-Security-Policy': CSP };
      res.writeHead(200, { ...NO_STORE, ...headers }).end(await fs.readFile(new URL(file, import.meta.url)));
    },
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
        const e = err instanceof HttpError ? err : new HttpError('internal error; see the log');
        // The path only: the start-up link's query carries the token.
        if (e !== err) logger.error({ err, path: req.url?.split('?')[0] }, 'local request failed');
        if (res.headersSent) return res.destroy();
        sendJson(res, e.status, { error: e.message });
      }),
    );
    server.listen(this.deps.port, '127.0.0.1');
    await once(server, 'listening');
    server.on('error', (err) => logger.error({ err }, 'local channel server error'));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const beat = setInterval(() => this.broadcast(': heartbeat\n\n'), this.deps.heartbeatMs ?? 15e3).unref();
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
    await new Promise((done) => (server.close(done), server.closeAllConnections()));
  }

  isConnected = () => !!this.server;
  ownsJid = (jid: string) => jid.startsWith('local:');
  url = () => `http://127.0.0.1:${this.port}/?token=${this.token}`;

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

  private broadcast(chunk: string): void {
    for (const res of this.clients)
      if (res.writableLength <= 1 << 20) res.write(chunk);
      else this.clients.delete(res.destroy());
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { port, token, deps } = this;
    const method = req.method!;
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
    // Against DNS rebinding.
    if (!hosts.includes(req.headers.host?.toLowerCase() ?? '')) fail(403, 'host not allowed');
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

    const route =
      this.routes.find((r) => r.method === method && r.re.test(pathname)) ??
      fail(404, `no such endpoint: ${method} ${pathname}`);
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
}
