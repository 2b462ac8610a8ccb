import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { localChatIdSchema } from '../channels/local/api.js';
import { SseParser } from '../channels/local/sse-parser.js';
import { readToken } from '../channels/local/token.js';

/** A problem the person can fix; the message says how. `notRunning`: no assistant answers for this home. */
export class ChatError extends Error {
  constructor(
    message: string,
    readonly notRunning = false,
  ) {
    super(message);
  }
}

const notStarted = (why: string, hint: string, notRunning = true) =>
  new ChatError(`${why}. ${hint}`, notRunning);
/** The hint after a failure to reach the assistant. */
export const startThen = (command: string) =>
  `Start the assistant with \`nanoclaw start\`, then run \`nanoclaw ${command}\` again.`;

async function errorText(res: Response): Promise<string> {
  const body = (await res.json().catch(() => ({}))) as { error?: unknown };
  return typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
}

type Host = { home: string; port: number };

/** The running assistant's local API: a fetch with its token; ChatError when it is not there. */
function hostApi({ home, port }: Host, hint: string) {
  const tokenFile = path.join(home, 'data', 'local-channel.token');
  const token = readToken(tokenFile);
  if (!token) throw notStarted(`No local channel token at ${tokenFile}`, hint);
  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `Bearer ${token}` };
  const request = async (apiPath: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}${apiPath}`, { ...init, headers }).catch(
      (err: Error & { cause?: { code?: string } }) => {
        throw notStarted(`The assistant is not running at ${base} (${err.cause?.code ?? err.message})`, hint);
      },
    );
    if (res.status === 401)
      throw new ChatError(
        `The assistant at ${base} did not accept the token in ${tokenFile}; it may belong to another NANOCLAW_HOME.`,
      );
    return res;
  };
  return { base, headers, request };
}

/** One call to the running assistant; its JSON answer, or ChatError with its reason. */
export async function askHost<T>(host: Host, hint: string, apiPath: string, method = 'GET'): Promise<T> {
  const res = await hostApi(host, hint).request(apiPath, { method });
  if (!res.ok) throw new ChatError(`The assistant refused: ${await errorText(res)}`);
  return (await res.json()) as T;
}

/** `nanoclaw stop <chat>`: a bare name means local:<name>. */
export async function runStop(host: Host, chat: string, out: Writable): Promise<void> {
  const jid = /[:@]/.test(chat) ? chat : `local:${chat}`;
  const url = `/api/chats/${encodeURIComponent(jid)}/stop`;
  const { stopped } = await askHost<{ stopped: boolean }>(
    host,
    'So no agent is running either.',
    url,
    'POST',
  );
  out.write(stopped ? `Stopped the agent in ${jid}.\n` : `Nothing was running in ${jid}.\n`);
}

type Event = { chat?: string; text?: string; sender?: string; isTyping?: boolean } | null;

/** Typed lines are posted to the local channel, replies stream in over SSE; resolves on end of input (Ctrl-D). `chat`: `local:<name>` or `<name>`. */
export async function runChat(opts: {
  home: string;
  port: number;
  chat: string;
  input?: Readable;
  output?: Writable;
}): Promise<void> {
  const { input = process.stdin, output = process.stdout } = opts;
  const chatJid = opts.chat.startsWith('local:') ? opts.chat : `local:${opts.chat}`;
  if (!localChatIdSchema.safeParse(chatJid).success)
    throw new ChatError(
      `--chat must be local:<name> with a name of 1-64 letters, digits, _ or - (got "${opts.chat}")`,
    );
  const { base, headers, request } = hostApi(opts, startThen('chat'));
  const chatUrl = `${base}/api/chats/${encodeURIComponent(chatJid)}`;

  const stopEvents = new AbortController();
  const events = await request('/api/events', { signal: stopEvents.signal });
  if (!events.ok || !events.body)
    throw notStarted(
      `The local channel at ${base} answered ${await errorText(events)}`,
      startThen('chat'),
      false,
    );

  const interactive = Boolean((input as NodeJS.ReadStream).isTTY && (output as NodeJS.WriteStream).isTTY);
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
  const getJson = async (url: string) => {
    const res = await fetch(url, { headers }).catch(() => undefined);
    return (res?.ok ? await res.json() : {}) as { assistantName?: string; registered?: boolean };
  };

  // Both asked before the banner: lines typed before the loop below starts reading would be lost.
  const assistant = (await getJson(`${base}/api/chats`)).assistantName ?? 'Assistant';
  const { registered } = await getJson(chatUrl);
  print(`Chatting in ${chatJid} with ${assistant}. Ctrl-D to quit.`);
  if (registered === false) {
    const name = chatJid.slice(6);
    print(
      `Note: ${chatJid} is not registered, so ${assistant} will not answer here. ` +
        `Register it: nanoclaw groups register --jid ${chatJid} --name ${name} --folder ${name}`,
    );
  }

  // The stream ending on its own means the assistant went away; that ends the session too.
  let lost: ChatError | undefined;
  const eventLoop = (async () => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of events.body as AsyncIterable<Uint8Array>) {
        for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
          let data: Event = null;
          try {
            data = JSON.parse(event.data) as Event;
          } catch {
            /* not ours */
          }
          if (data?.chat !== chatJid) continue;
          if (event.event === 'message') print(`${data.sender ?? assistant}: ${data.text ?? ''}`);
          else if (event.event === 'typing' && data.isTyping) print(`… ${assistant} is working`);
        }
      }
      lost = notStarted('The assistant closed the connection', startThen('chat'));
    } catch (err) {
      lost = notStarted(
        `Lost the connection to the assistant (${(err as Error).message})`,
        startThen('chat'),
      );
    }
    if (stopEvents.signal.aborted) lost = undefined;
    else rl.close();
  })();

  const post = async (text: string) => {
    const res = await fetch(`${chatUrl}/messages`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ text }),
    }).catch((err: Error) => err);
    if (res instanceof Error) print(`! not sent: ${res.message}`);
    else if (res.status !== 202) print(`! not sent: ${await errorText(res)}`);
  };

  let inputEnded = false;
  rl.on('close', () => (inputEnded = true));
  rl.setPrompt('> ');
  rl.prompt(); // writes only to a terminal
  try {
    for await (const line of rl) {
      if (line.trim() !== '') await post(line);
      // Input may have ended while the post was in flight; Node 22+ throws on a closed prompt.
      if (!inputEnded) rl.prompt();
    }
  } finally {
    stopEvents.abort();
    rl.close();
    await eventLoop;
  }
  if (lost) throw lost;
}
