import fs from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../../logger.js';
import type { Channel } from '../../types.js';
import { type ApiDeps, LOCAL_JID_PREFIX, LocalApi } from './api.js';
import { EventHub, type LocalEvent } from './events.js';
import { createLocalServer } from './server.js';
import { loadOrCreateToken } from './token.js';

export interface LocalChannelDeps extends ApiDeps {
  /** 0 picks a free port (tests). */
  port: number;
  /** $NANOCLAW_HOME/data/local-channel.token; created 0600 with a random token if missing. */
  tokenFile: string;
  /** SSE heartbeat interval; defaults to 15 s. */
  heartbeatMs?: number;
}

/**
 * The page is one self-contained HTML document (no build step, no external resources), kept as
 * three files for reading and assembled here. Loaded at connect, not at import, so importing this
 * module has no side effects.
 */
function loadPageTemplate(): string {
  const read = (name: string) => fs.readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
  return read('page.html')
    .replace('/* page.css */', () => read('page.css'))
    .replace('// page.js', () => read('page.js'));
}

/**
 * The built-in web chat: a loopback-only HTTP API, an SSE stream and a chat page. Chats are
 * `local:<name>`; inbound messages go to the host through the usual channel callbacks.
 */
export class LocalChannel implements Channel {
  readonly name = 'local';
  private server: http.Server | undefined;
  private readonly events: EventHub;
  private boundPort = 0;
  private secret: string | undefined;
  /** Chats where the assistant is working, replayed to streams that connect mid-run. */
  private readonly typing = new Set<string>();

  constructor(private readonly deps: LocalChannelDeps) {
    this.events = new EventHub(deps.heartbeatMs);
  }

  async connect(): Promise<void> {
    if (this.server) return;
    const token = loadOrCreateToken(this.deps.tokenFile);
    const server = createLocalServer({
      token,
      port: () => this.boundPort,
      api: new LocalApi(this.deps),
      events: this.events,
      currentState: () => this.typingState(),
      pageTemplate: loadPageTemplate(),
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // 127.0.0.1 only: the API is for the person at this machine, never the network.
      server.listen(this.deps.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
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
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.typing.clear();
    logger.info({ port: this.boundPort }, 'local channel stopped');
  }

  isConnected(): boolean {
    return this.server !== undefined;
  }

  ownsJid(jid: string): boolean {
    return jid.startsWith(LOCAL_JID_PREFIX);
  }

  async sendMessage(jid: string, text: string): Promise<void> {
    this.events.publish({
      type: 'message',
      data: { chat: jid, text, timestamp: new Date().toISOString(), sender: this.deps.assistantName },
    });
  }

  async setTyping(jid: string, isTyping: boolean): Promise<void> {
    if (isTyping) this.typing.add(jid);
    else this.typing.delete(jid);
    this.events.publish({ type: 'typing', data: { chat: jid, isTyping } });
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

  private typingState(): LocalEvent[] {
    return [...this.typing].map((chat) => ({ type: 'typing', data: { chat, isTyping: true } }));
  }
}
