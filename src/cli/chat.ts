import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { localChatIdSchema } from '../channels/local/api.js';
import { SseParser } from '../channels/local/sse-parser.js';
import { readToken } from '../channels/local/token.js';

export interface ChatOptions {
  /** $NANOCLAW_HOME; the token is read from data/local-channel.token under it. */
  home: string;
  port: number;
  /** `local:<name>`, or just `<name>`. */
  chat: string;
  input?: Readable;
  output?: Writable;
}

/** A problem the person can fix; the message says how. */
export class ChatError extends Error {}

const START_HINT = 'Start the assistant with `nanoclaw start`, then run `nanoclaw chat` again.';

function toChatJid(chat: string): string {
  const jid = chat.startsWith('local:') ? chat : `local:${chat}`;
  if (!localChatIdSchema.safeParse(jid).success) {
    throw new ChatError(
      `--chat must be local:<name> with a name of 1-64 letters, digits, _ or - (got "${chat}")`,
    );
  }
  return jid;
}

async function errorText(res: Response): Promise<string> {
  const body = (await res.json().catch(() => ({}))) as { error?: unknown };
  return typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
}

/**
 * Talks to a chat through the local channel from a terminal: lines typed are posted, the
 * assistant's replies stream in over SSE. Resolves on end of input (Ctrl-D).
 */
export async function runChat(opts: ChatOptions): Promise<void> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const chatJid = toChatJid(opts.chat);
  const tokenFile = path.join(opts.home, 'data', 'local-channel.token');
  const token = readToken(tokenFile);
  if (!token) throw new ChatError(`No local channel token at ${tokenFile}. ${START_HINT}`);
  const base = `http://127.0.0.1:${opts.port}`;
  const auth = { Authorization: `Bearer ${token}` };

  const stopEvents = new AbortController();
  let events: Response;
  try {
    events = await fetch(`${base}/api/events`, { headers: auth, signal: stopEvents.signal });
  } catch (err) {
    const reason = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new ChatError(`The assistant is not running at ${base} (${reason}). ${START_HINT}`);
  }
  if (events.status === 401) {
    throw new ChatError(
      `The assistant at ${base} did not accept the token in ${tokenFile}; it may belong to another NANOCLAW_HOME. ${START_HINT}`,
    );
  }
  if (!events.ok || !events.body) {
    throw new ChatError(`The local channel at ${base} answered ${await errorText(events)}. ${START_HINT}`);
  }

  const interactive = Boolean((input as { isTTY?: boolean }).isTTY && (output as { isTTY?: boolean }).isTTY);
  const rl = readline.createInterface({
    input,
    output: interactive ? output : undefined,
    terminal: interactive,
  });
  const print = (line: string) => {
    if (!interactive) return void output.write(`${line}\n`);
    readline.clearLine(output, 0);
    readline.cursorTo(output, 0);
    output.write(`${line}\n`);
    rl.prompt(true);
  };

  let assistantName = 'Assistant';
  const chats = await fetch(`${base}/api/chats`, { headers: auth }).catch(() => undefined);
  if (chats?.ok)
    assistantName = ((await chats.json()) as { assistantName?: string }).assistantName ?? assistantName;
  const info = await fetch(`${base}/api/chats/${encodeURIComponent(chatJid)}`, { headers: auth }).catch(
    () => undefined,
  );
  const registered = info?.ok ? ((await info.json()) as { registered?: boolean }).registered : undefined;

  print(`Chatting in ${chatJid} with ${assistantName}. Ctrl-D to quit.`);
  if (registered === false) {
    const name = chatJid.slice('local:'.length);
    print(
      `Note: ${chatJid} is not registered, so ${assistantName} will not answer here. ` +
        `Register it: nanoclaw groups register --jid ${chatJid} --name ${name} --folder ${name}`,
    );
  }

  // The stream ending on its own means the assistant went away; that ends the session too.
  let lostConnection: ChatError | undefined;
  const eventLoop = (async () => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of events.body as AsyncIterable<Uint8Array>) {
        for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
          const data = parseEventData(event.data);
          if (data?.chat !== chatJid) continue;
          if (event.event === 'message') print(`${data.sender ?? assistantName}: ${data.text ?? ''}`);
          else if (event.event === 'typing' && data.isTyping) print(`… ${assistantName} is working`);
        }
      }
    } catch (err) {
      if (stopEvents.signal.aborted) return;
      lostConnection = new ChatError(
        `Lost the connection to the assistant (${(err as Error).message}). ${START_HINT}`,
      );
    }
    if (!stopEvents.signal.aborted) {
      lostConnection ??= new ChatError(`The assistant closed the connection. ${START_HINT}`);
      rl.close();
    }
  })();

  if (interactive) {
    rl.setPrompt('> ');
    rl.prompt();
  }
  try {
    for await (const line of rl) {
      if (line.trim() !== '') await post(base, auth, chatJid, line, print);
      if (interactive) rl.prompt();
    }
  } finally {
    stopEvents.abort();
    rl.close();
    await eventLoop;
  }
  if (lostConnection) throw lostConnection;
}

interface EventData {
  chat?: string;
  text?: string;
  sender?: string;
  isTyping?: boolean;
}

function parseEventData(data: string): EventData | undefined {
  try {
    return JSON.parse(data) as EventData;
  } catch {
    return undefined;
  }
}

async function post(
  base: string,
  auth: Record<string, string>,
  chatJid: string,
  text: string,
  print: (line: string) => void,
): Promise<void> {
  try {
    const res = await fetch(`${base}/api/chats/${encodeURIComponent(chatJid)}/messages`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ text }),
    });
    if (res.status !== 202) print(`! not sent: ${await errorText(res)}`);
  } catch (err) {
    print(`! not sent: ${(err as Error).message}`);
  }
}
