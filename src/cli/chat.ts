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

export const startThen = (command: string) =>
  `Start the assistant with \`nanoclaw start\`, then run \`nanoclaw ${command}\` again.`;
const errorText = async (res: Response) =>
  ((await res.json().catch(() => ({}))) as { error?: string }).error ?? `HTTP ${res.status}`;

type Host = { home: string; port: number };

// A fetch to the running assistant's local API with its token; ChatError when it is not there.
function hostApi({ home, port }: Host, hint: string) {
  const tokenFile = path.join(home, 'data', 'local-channel.token');
  const token = readToken(tokenFile);
  if (!token) throw new ChatError(`No local channel token at ${tokenFile}. ${hint}`, true);
  const base = `http://127.0.0.1:${port}`;
  return async (url: string, init: RequestInit = {}) => {
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const res = await fetch(base + url, { ...init, headers }).catch(
      (err: Error & { cause?: { code?: string } }) => {
        throw new ChatError(
          `The assistant is not running at ${base} (${err.cause?.code ?? err.message}). ${hint}`,
          true,
        );
      },
    );
    if (res.status === 401)
      throw new ChatError(
        `The assistant at ${base} did not accept the token in ${tokenFile}; is it another NANOCLAW_HOME's?`,
      );
    return res;
  };
}

export async function askHost<T>(host: Host, hint: string, url: string, method = 'GET'): Promise<T> {
  const res = await hostApi(host, hint)(url, { method });
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

/** Typed lines go to the local channel, replies stream in over SSE; resolves on end of input (Ctrl-D). */
export async function runChat(
  opts: Host & { chat: string; input?: Readable; output?: Writable },
): Promise<void> {
  const { input = process.stdin, output = process.stdout } = opts;
  const jid = opts.chat.startsWith('local:') ? opts.chat : `local:${opts.chat}`;
  if (!localChatIdSchema.safeParse(jid).success)
    throw new ChatError(
      `--chat must be local:<name>, the name 1-64 letters, digits, _ or - (got "${opts.chat}")`,
    );
  const hint = startThen('chat');
  const request = hostApi(opts, hint);
  const chatUrl = `/api/chats/${encodeURIComponent(jid)}`;
  const stopEvents = new AbortController();
  const events = await request('/api/events', { signal: stopEvents.signal });
  const tty = !!((input as NodeJS.ReadStream).isTTY && (output as NodeJS.WriteStream).isTTY);
  const rl = readline.createInterface({ input, output: tty ? output : undefined, terminal: tty });
  const print = (line: string) => {
    output.write(`${tty ? '\r\x1b[2K' : ''}${line}\n`); // on a terminal: over the prompt line
    if (tty) rl.prompt(true);
  };
  // Both asked before the banner: lines typed before the loop below reads would be lost.
  const [{ assistantName: name = 'Assistant' }, { registered }] = (await Promise.all(
    ['/api/chats', chatUrl].map((url) =>
      request(url).then(
        (r) => r.json(),
        () => ({}),
      ),
    ),
  )) as [{ assistantName?: string }, { registered?: boolean }];
  print(`Chatting in ${jid} with ${name}. Ctrl-D to quit.`);
  const folder = jid.slice(6);
  if (registered === false)
    print(
      `Note: ${jid} is not registered, so ${name} will not answer here. Register it: nanoclaw groups register --jid ${jid} --name ${folder} --folder ${folder}`,
    );

  // The stream ending on its own means the assistant went away; that ends the session too.
  let lost: ChatError | undefined;
  const eventLoop = (async () => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    let why = 'The assistant closed the connection';
    try {
      for await (const chunk of events.body as AsyncIterable<Uint8Array>)
        for (const { event, data } of parser.push(decoder.decode(chunk, { stream: true }))) {
          const d = JSON.parse(data) as { chat?: string; text?: string; sender?: string; isTyping?: boolean };
          if (d.chat !== jid) continue;
          if (event === 'message') print(`${d.sender ?? name}: ${d.text ?? ''}`);
          else if (event === 'typing' && d.isTyping) print(`… ${name} is working`);
        }
    } catch (err) {
      why = `Lost the connection to the assistant (${(err as Error).message})`;
    }
    if (stopEvents.signal.aborted) return;
    lost = new ChatError(`${why}. ${hint}`, true);
    rl.close();
  })();

  let inputEnded = false;
  rl.on('close', () => (inputEnded = true));
  rl.setPrompt('> ');
  rl.prompt(); // writes only to a terminal
  try {
    for await (const line of rl) {
      if (line.trim()) {
        const res = await request(`${chatUrl}/messages`, {
          method: 'POST',
          body: JSON.stringify({ text: line }),
        }).catch((err: Error) => err);
        if (res instanceof Error || res.status !== 202)
          print(`! not sent: ${res instanceof Error ? res.message : await errorText(res)}`);
      }
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
