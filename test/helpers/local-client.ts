import { vi } from 'vitest';
import type { App } from '../../src/app.js';
import { LocalChannel } from '../../src/channels/local/local-channel.js';

/** How a test talks to a running App: through its local channel, as a person at the keyboard would. */
export interface LocalClient {
  local: LocalChannel;
  /** POSTs `{text}` to the chat. */
  post(chat: string, text: string): Promise<Response>;
  /** POSTs a body as it is (for bad-input tests). */
  postRaw(chat: string, body: string | Buffer, contentType?: string): Promise<Response>;
  /** Assistant messages of the chat as stored, oldest first. */
  assistantTexts(chat: string): string[];
  /** Waits for an assistant message matching `match`; returns it. */
  waitForText(
    chat: string,
    match: (text: string) => boolean,
    timeoutMs: number,
    intervalMs?: number,
  ): Promise<string>;
}

export function localClient(app: App): LocalClient {
  const local = app.channels.find((c): c is LocalChannel => c instanceof LocalChannel);
  if (!local) throw new Error('the app has no local channel');
  const assistantTexts = (chat: string) =>
    app.store.messages
      .history(chat, undefined, 5000)
      .filter((m) => m.isBotMessage)
      .map((m) => m.content);
  const postRaw = (chat: string, body: string | Buffer, contentType = 'application/json') =>
    fetch(`http://127.0.0.1:${local.port}/api/chats/${encodeURIComponent(chat)}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${local.token}`, 'content-type': contentType },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
  return {
    local,
    postRaw,
    post: (chat, text) => postRaw(chat, JSON.stringify({ text })),
    assistantTexts,
    async waitForText(chat, match, timeoutMs, intervalMs = 100) {
      let found: string | undefined;
      await vi.waitFor(
        () => {
          found = assistantTexts(chat).find(match);
          if (found === undefined) {
            throw new Error(`no matching reply yet in ${chat}: ${JSON.stringify(assistantTexts(chat))}`);
          }
        },
        { timeout: timeoutMs, interval: intervalMs },
      );
      return found!;
    },
  };
}
