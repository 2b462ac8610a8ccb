import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { SseParser } from '../channels/local/sse-parser.js';
import { readToken } from '../channels/local/token.js';

/** A problem the message says how to fix. */
export class ChatError extends Error {}

type Host = { home: string; port: number };
const fail = (why: string, start = ' Start the assistant: `nanoclaw start`.'): never => {
  throw new ChatError(why + start);
};

export function hostToken(home: string) {
  const file = path.join(home, 'data', 'local-channel.token');
  return readToken(file) ?? fail(`No local chat token at ${file}.`);
}

async function request({ home, port }: Host, url: string, init: RequestInit = { method: 'POST' }) {
  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `Bearer ${hostToken(home)}`, 'Content-Type': 'application/json' };
  const res = await fetch(base + url, { ...init, headers }).catch(
    (e: Error & { cause?: { code?: string } }) =>
      fail(`The assistant is not running at ${base} (${e.cause?.code ?? e.message}).`),
  );
  if (res.status === 401) fail(`The assistant at ${base} refused the token.`, '');
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    fail(`The assistant refused: ${body.error ?? `HTTP ${res.status}`}`, '');
  }
  return res;
}

// A bare name means local:<name>.
export async function runStop(host: Host, chat: string, out: Writable) {
  const jid = /[:@]/.test(chat) ? chat : `local:${chat}`;
  const res = await request(host, `/api/chats/${encodeURIComponent(jid)}/stop`);
  const { stopped } = (await res.json()) as { stopped: boolean };
  out.write(`${stopped ? 'Stopped the agent' : 'Nothing was running'} in ${jid}.\n`);
}

// Through the host: it holds the connection that logs out.
export async function runWhatsAppUnlink(host: Host, out: Writable) {
  await request(host, '/api/whatsapp/unlink');
  out.write('WhatsApp is unlinked and its credentials are deleted.\n');
}

/** Typed lines go to the local channel, replies come over SSE; ends on Ctrl-D. */
export async function runChat(opts: Host & { chat: string; input?: Readable; output?: Writable }) {
  const { input = process.stdin, output = process.stdout } = opts;
  const jid = opts.chat.startsWith('local:') ? opts.chat : `local:${opts.chat}`;
  const print = (line: string) => output.write(`${line}\n`);
  const stop = new AbortController();
  const events = await request(opts, '/api/events', { signal: stop.signal });
  print(`Chatting in ${jid}. Ctrl-D to quit.`);
  const rl = readline.createInterface({ input, terminal: false });
  let lost = false;
  const eventLoop = (async () => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of events.body as AsyncIterable<Uint8Array>)
        for (const { event, data } of parser.push(decoder.decode(chunk, { stream: true }))) {
          const d = JSON.parse(data) as { chat: string; text: string; sender: string; isTyping?: boolean };
          if (d.chat !== jid) continue;
          if (event === 'message') print(`${d.sender}: ${d.text}`);
          else if (d.isTyping) print('… working');
        }
    } catch {
      // stopped below, or the connection broke
    }
    lost = !stop.signal.aborted;
    rl.close();
  })();
  try {
    const url = `/api/chats/${encodeURIComponent(jid)}/messages`;
    for await (const text of rl) {
      if (text.trim())
        await request(opts, url, { method: 'POST', body: JSON.stringify({ text }) }).catch((e: Error) =>
          print(`! not sent: ${e.message}`),
        );
    }
  } finally {
    stop.abort();
    rl.close();
    await eventLoop;
  }
  if (lost) fail('Lost the connection to the assistant.');
}
