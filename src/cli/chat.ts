import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { SseParser } from '../channels/local/sse-parser.js';
import { readToken } from '../channels/local/token.js';

/** A problem the message says how to fix. */
export class ChatError extends Error {}

const startThen = (command: string) =>
  `Start the assistant with \`nanoclaw start\`, then run \`nanoclaw ${command}\` again.`;
const errorText = async (res: Response) =>
  ((await res.json().catch(() => ({}))) as { error?: string }).error ?? `HTTP ${res.status}`;

type Host = { home: string; port: number };

function hostApi({ home, port }: Host, hint: string) {
  const tokenFile = path.join(home, 'data', 'local-channel.token');
  const token = readToken(tokenFile);
  if (!token) throw new ChatError(`No local channel token at ${tokenFile}. ${hint}`);
  const base = `http://127.0.0.1:${port}`;
  return async (url: string, init: RequestInit = {}) => {
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const res = await fetch(base + url, { ...init, headers }).catch(
      (e: Error & { cause?: { code?: string } }) => {
        throw new ChatError(
          `The assistant is not running at ${base} (${e.cause?.code ?? e.message}). ${hint}`,
        );
      },
    );
    if (res.status === 401)
      throw new ChatError(`The assistant at ${base} refused the token in ${tokenFile}.`);
    return res;
  };
}

async function post<T>(host: Host, hint: string, url: string): Promise<T> {
  const res = await hostApi(host, hint)(url, { method: 'POST' });
  if (!res.ok) throw new ChatError(`The assistant refused: ${await errorText(res)}`);
  return (await res.json()) as T;
}

/** `nanoclaw stop <chat>`: a bare name means local:<name>. */
export async function runStop(host: Host, chat: string, out: Writable): Promise<void> {
  const jid = /[:@]/.test(chat) ? chat : `local:${chat}`;
  const url = `/api/chats/${encodeURIComponent(jid)}/stop`;
  const { stopped } = await post<{ stopped: boolean }>(host, 'So no agent is running either.', url);
  out.write(stopped ? `Stopped the agent in ${jid}.\n` : `Nothing was running in ${jid}.\n`);
}

// Through the host: it holds the connection that logs out.
export async function runWhatsAppUnlink(host: Host, out: Writable): Promise<void> {
  await post(host, startThen('whatsapp-unlink'), '/api/whatsapp/unlink');
  out.write('WhatsApp is unlinked and its credentials are deleted.\n');
}

/** Typed lines go to the local channel, replies come over SSE; ends on Ctrl-D. */
export async function runChat(opts: Host & { chat: string; input?: Readable; output?: Writable }) {
  const { input = process.stdin, output = process.stdout } = opts;
  const jid = opts.chat.startsWith('local:') ? opts.chat : `local:${opts.chat}`;
  const hint = startThen('chat');
  const request = hostApi(opts, hint);
  const print = (line: string) => output.write(`${line}\n`);
  const stop = new AbortController();
  const events = await request('/api/events', { signal: stop.signal });
  print(`Chatting in ${jid}. Ctrl-D to quit.`);
  const rl = readline.createInterface({ input, terminal: false });
  let lost: ChatError | undefined;
  const eventLoop = (async () => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    let why = 'The assistant closed the connection';
    try {
      for await (const chunk of events.body as AsyncIterable<Uint8Array>)
        for (const { event, data } of parser.push(decoder.decode(chunk, { stream: true }))) {
          const d = JSON.parse(data) as { chat: string; text: string; sender: string; isTyping?: boolean };
          if (d.chat !== jid) continue;
          if (event === 'message') print(`${d.sender}: ${d.text}`);
          else if (d.isTyping) print('… working');
        }
    } catch (e) {
      why = `Lost the connection to the assistant (${(e as Error).message})`;
    }
    if (stop.signal.aborted) return;
    lost = new ChatError(`${why}. ${hint}`);
    rl.close();
  })();
  try {
    for await (const line of rl) {
      if (!line.trim()) continue;
      const init = { method: 'POST', body: JSON.stringify({ text: line }) };
      const res = await request(`/api/chats/${encodeURIComponent(jid)}/messages`, init).catch(
        (e: Error) => e,
      );
      if (res instanceof Error || res.status !== 202)
        print(`! not sent: ${res instanceof Error ? res.message : await errorText(res)}`);
    }
  } finally {
    stop.abort();
    rl.close();
    await eventLoop;
  }
  if (lost) throw lost;
}
