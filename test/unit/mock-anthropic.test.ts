import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  allUserText,
  hasToolResult,
  isAgentTurn,
  lastUserText,
  newestUserText,
  startMockAnthropic,
  toolNames,
  type MockAnthropic,
} from '../fixtures/mock-anthropic.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim().length > 0)
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>;
      return { event, data };
    });
}

let mock: MockAnthropic | undefined;
afterEach(async () => {
  await mock?.close();
  mock = undefined;
});

const post = (url: string, body: unknown) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'test-key' },
    body: JSON.stringify(body),
  });

const userMessage = (text: string) => ({
  model: 'claude-test',
  max_tokens: 100,
  stream: true,
  messages: [{ role: 'user', content: text }],
});

describe('mock Anthropic Messages API', () => {
  it('streams a text answer as a complete SSE message and records the request', async () => {
    mock = await startMockAnthropic({ script: () => ({ text: 'Hello there, friend' }) });
    const res = await post(`${mock.url}/v1/messages?beta=true`, userMessage('hi'));
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await res.text());
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      ...events.filter((e) => e.event === 'content_block_delta').map(() => 'content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    for (const e of events) expect(e.data.type).toBe(e.event);
    const deltas = events.filter((e) => e.event === 'content_block_delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => (e.data.delta as { text: string }).text).join('')).toBe('Hello there, friend');
    const start = events[0]!.data.message as { model: string; usage: { input_tokens: number } };
    expect(start.model).toBe('claude-test');
    expect(start.usage.input_tokens).toBeGreaterThan(0);
    const delta = events.find((e) => e.event === 'message_delta')!.data;
    expect(delta).toMatchObject({ delta: { stop_reason: 'end_turn' } });
    expect((delta.usage as { output_tokens: number }).output_tokens).toBeGreaterThan(0);

    expect(mock.requests).toHaveLength(1);
    expect(mock.requests[0]).toMatchObject({ method: 'POST', path: '/v1/messages?beta=true' });
    expect(mock.requests[0]!.headers['x-api-key']).toBe('test-key');
    expect(mock.requests[0]!.body.messages[0].content).toBe('hi');
  });

  it('streams a tool call as input_json_delta pieces with stop_reason tool_use', async () => {
    mock = await startMockAnthropic({
      script: () => ({
        text: 'Let me check.',
        toolUse: { name: 'Bash', input: { command: 'echo hello > x.txt' } },
      }),
    });
    const events = parseSse(await (await post(`${mock.url}/v1/messages`, userMessage('go'))).text());
    const starts = events.filter((e) => e.event === 'content_block_start');
    expect(starts.map((e) => (e.data.content_block as { type: string }).type)).toEqual(['text', 'tool_use']);
    const toolBlock = starts[1]!.data.content_block as { id: string; name: string };
    expect(toolBlock.name).toBe('Bash');
    expect(toolBlock.id).toMatch(/^toolu_/);
    const json = events
      .filter((e) => e.event === 'content_block_delta' && e.data.index === 1)
      .map((e) => (e.data.delta as { type: string; partial_json: string }).partial_json)
      .join('');
    expect(JSON.parse(json)).toEqual({ command: 'echo hello > x.txt' });
    expect(events.find((e) => e.event === 'message_delta')!.data).toMatchObject({
      delta: { stop_reason: 'tool_use' },
    });
  });

  it('answers non-streaming requests with one JSON message and honours reported usage', async () => {
    mock = await startMockAnthropic({
      script: () => ({ text: 'plain', usage: { input_tokens: 123, output_tokens: 45 } }),
    });
    const res = await post(`${mock.url}/v1/messages`, { ...userMessage('x'), stream: false });
    expect(await res.json()).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'plain' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 123, output_tokens: 45 },
    });
  });

  it('returns scripted API errors, drops connections, and passes index and body to the script', async () => {
    const seen: number[] = [];
    mock = await startMockAnthropic({
      script: ({ index, body }) => {
        seen.push(index);
        if (lastUserText(body) === 'fail')
          return { error: { status: 429, type: 'rate_limit_error', message: 'slow down' } };
        if (lastUserText(body) === 'drop') return { dropConnection: true };
        return { delayMs: 50 };
      },
    });
    const failed = await post(`${mock.url}/v1/messages`, userMessage('fail'));
    expect(failed.status).toBe(429);
    expect(await failed.json()).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'slow down' },
    });
    await expect(post(`${mock.url}/v1/messages`, userMessage('drop'))).rejects.toThrow();
    const started = Date.now();
    const delayed = parseSse(await (await post(`${mock.url}/v1/messages`, userMessage('w'))).text());
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    const delayedText = delayed
      .filter((e) => e.event === 'content_block_delta')
      .map((e) => (e.data.delta as { text: string }).text)
      .join('');
    expect(delayedText).toBe('ok');
    expect(seen).toEqual([0, 1, 2]);
  });

  it('answers count_tokens, models and unknown paths with JSON, and swaps scripts', async () => {
    mock = await startMockAnthropic();
    const count = await post(`${mock.url}/v1/messages/count_tokens`, userMessage('count me'));
    expect(((await count.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(0);
    expect((await fetch(`${mock.url}/v1/models`)).status).toBe(200);
    const unknown = await fetch(`${mock.url}/v1/nothing`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ type: 'error' });
    mock.setScript(() => ({ text: 'swapped' }));
    const res = await post(`${mock.url}/v1/messages`, { ...userMessage('x'), stream: false });
    expect(await res.json()).toMatchObject({ content: [{ text: 'swapped' }] });
  });

  it('listens on a unix socket as well when asked', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mock-anthropic-'));
    const socketPath = path.join(dir, 'api.sock');
    mock = await startMockAnthropic({ socketPath, script: () => ({ text: 'via socket' }) });
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { socketPath, method: 'POST', path: '/v1/messages', headers: { 'content-type': 'application/json' } },
        (res) => {
          let data = '';
          res.on('data', (c: Buffer) => (data += c.toString()));
          res.on('end', () => resolve(data));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ ...userMessage('x'), stream: false }));
    });
    expect(JSON.parse(body)).toMatchObject({ content: [{ text: 'via socket' }] });
    await mock.close();
    mock = undefined;
    expect(fs.existsSync(socketPath)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('script helpers', () => {
  const toolTurn = {
    tools: [{ name: 'Bash' }, { name: 'mcp__nanoclaw__send_message' }],
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'create x.txt' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: {} }] },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: '1000' }] }],
      },
    ],
  };

  it('tells agent turns from side requests and reads the last user text', () => {
    expect(isAgentTurn(toolTurn)).toBe(true);
    expect(isAgentTurn({ messages: [] })).toBe(false);
    expect(toolNames(toolTurn)).toEqual(['Bash', 'mcp__nanoclaw__send_message']);
    expect(hasToolResult(toolTurn)).toBe(true);
    expect(lastUserText(toolTurn)).toBe('1000');
    expect(allUserText(toolTurn)).toBe('create x.txt\n1000');
    const prompt = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: '<system-reminder>\nnote\n</system-reminder>' },
            { type: 'text', text: 'the prompt' },
          ],
        },
      ],
    };
    expect(newestUserText(prompt)).toBe('the prompt');
    expect(lastUserText(prompt)).toContain('note');
    const plain = { messages: [{ role: 'user', content: 'just text' }] };
    expect(hasToolResult(plain)).toBe(false);
    expect(lastUserText(plain)).toBe('just text');
    expect(lastUserText(null)).toBe('');
  });
});
