import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '../../src/channels/local/api.js';
import { isAgentTurn, lastUserText, type MockScript } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';

const sha = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

/** Answers with the hash and length of the newest message's text, as the model received it. */
const hashingModel: MockScript = ({ body }) => {
  if (!isAgentTurn(body)) return { text: 'ok' };
  const bodies = [...lastUserText(body).matchAll(/<message [^>]*>([\s\S]*?)<\/message>/g)].map((m) => m[1]!);
  const last = bodies.at(-1) ?? '';
  return { text: `GOT ${sha(last)} ${last.length}` };
};

/** A text whose JSON body is `bytes` long: multi-byte letters, an emoji, plain ASCII. */
function textOfBodySize(bytes: number): string {
  const unit = 'äöü漢字🙂 plain words ';
  const overhead = Buffer.byteLength(JSON.stringify({ text: '' }));
  let text = unit.repeat(Math.floor((bytes - overhead) / Buffer.byteLength(unit)));
  while (Buffer.byteLength(JSON.stringify({ text })) < bytes) text += 'x';
  return text;
}

/**
 * Big and broken input at the local channel, through the real host, a real sandbox and the real
 * SDK: up to the channel's cap a message is stored intact and reaches the model intact; over it,
 * 413 and nothing is stored.
 *
 * Invalid UTF-8 in a body is decoded with replacement characters (U+FFFD), as browsers and
 * WHATWG decoders do: the message is kept, the broken bytes show as �, nothing else changes.
 */
describe('big and malformed input at the local channel (docker)', () => {
  let host: E2eHost;
  const stored = (chat: string) =>
    host.app.store.messages.history(chat, undefined, 100).filter((m) => !m.isBotMessage);

  beforeAll(async () => {
    host = await startE2eHost({ runtime: 'docker', script: hashingModel, groups: ['big'] });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('stores a message of exactly the cap intact and delivers it to the model intact', async () => {
    const text = textOfBodySize(MAX_BODY_BYTES);
    expect(Buffer.byteLength(JSON.stringify({ text }))).toBe(MAX_BODY_BYTES);
    const res = await host.post('local:big', text);
    expect(res.status).toBe(202);
    const [row] = stored('local:big');
    expect(row!.content.length).toBe(text.length);
    expect(sha(row!.content)).toBe(sha(text));
    await host.waitFor('local:big', (t) => t.startsWith('GOT'), 120_000);
    expect(host.assistantTexts('local:big')).toEqual([`GOT ${sha(text)} ${text.length}`]);
  });

  it('refuses a body one byte over the cap with 413 and stores nothing', async () => {
    const before = host.app.store.messages.history('local:big', undefined, 100).length;
    const text = textOfBodySize(MAX_BODY_BYTES + 1);
    const res = await host.post('local:big', text);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/too large \(limit 1048576 bytes\)/);
    expect(host.app.store.messages.history('local:big', undefined, 100)).toHaveLength(before);
  });

  it('keeps a message with invalid UTF-8 bytes, showing them as replacement characters', async () => {
    const raw = Buffer.concat([
      Buffer.from('{"text":"caf'),
      Buffer.from([0xc3, 0x28]), // a lead byte without its continuation
      Buffer.from(' ok '),
      Buffer.from([0xff, 0xfe]), // never valid in UTF-8
      Buffer.from(' end"}'),
    ]);
    const res = await fetch(`http://127.0.0.1:${host.local.port}/api/chats/local%3Amain/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${host.local.token}`, 'content-type': 'application/json' },
      body: new Uint8Array(raw),
    });
    expect(res.status).toBe(202);
    const expected = 'caf\uFFFD( ok \uFFFD\uFFFD end';
    expect(stored('local:main').at(-1)!.content).toBe(expected);
    await host.waitFor('local:main', (t) => t.startsWith('GOT'), 120_000);
    expect(host.assistantTexts('local:main')).toEqual([`GOT ${sha(expected)} ${expected.length}`]);
  });
});
