import { describe, expect, it } from 'vitest';
import { OUTPUT_END, OUTPUT_START } from '../../src/contract/ipc.js';
import { AgentOutputParser, MAX_OUTPUT_BYTES } from '../../src/sandbox/sandbox-runner.js';
import type { AgentOutput } from '../../src/types.js';

const frame = (output: object | string) =>
  `${OUTPUT_START}\n${typeof output === 'string' ? output : JSON.stringify(output)}\n${OUTPUT_END}\n`;

function feedAll(parser: AgentOutputParser, chunks: Buffer[]): AgentOutput[] {
  return chunks.flatMap((chunk) => parser.feed(chunk));
}

describe('AgentOutputParser', () => {
  const first = { status: 'success', result: 'héllo 🌍 <internal>x</internal>', newSessionId: 's1' };
  const second = { status: 'error', result: null, error: 'went wrong' };
  const stream = Buffer.from(
    `debug: starting\n---NANOCLAW_OUT noise that looks like a marker\n${frame(first)}more noise\n${frame(second)}trailing`,
  );

  it('finds every frame whatever byte the stream is split at', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const parser = new AgentOutputParser();
      const outputs = feedAll(parser, [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(outputs, `split at byte ${cut}`).toEqual([first, second]);
    }
  });

  it('finds every frame when the stream arrives one byte at a time', () => {
    const parser = new AgentOutputParser();
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(feedAll(parser, bytes)).toEqual([first, second]);
  });

  it('returns results as soon as their end marker arrives', () => {
    const parser = new AgentOutputParser();
    const text = frame(first);
    expect(parser.feed(text.slice(0, -OUTPUT_END.length - 2))).toEqual([]);
    expect(parser.feed(text.slice(-OUTPUT_END.length - 2))).toEqual([first]);
  });

  it('turns malformed JSON into an error output and keeps parsing', () => {
    const parser = new AgentOutputParser();
    const outputs = parser.feed(frame('{"status": "success", oops') + frame(first));
    expect(outputs).toHaveLength(2);
    expect(outputs[0]).toMatchObject({ status: 'error', result: null });
    expect(outputs[0]?.error).toMatch(/Malformed output/);
    expect(outputs[1]).toEqual(first);
  });

  it('turns JSON of the wrong shape into an error output naming the field', () => {
    const parser = new AgentOutputParser();
    const [output] = parser.feed(frame({ status: 'done', result: 3 }));
    expect(output?.status).toBe('error');
    expect(output?.error).toMatch(/status/);
    expect(output?.error).toMatch(/result/);
  });

  it('reports overflow past the cap and ignores what follows', () => {
    const parser = new AgentOutputParser();
    expect(parser.feed(frame(first))).toEqual([first]);
    expect(parser.overflowed).toBe(false);
    expect(parser.feed('x'.repeat(MAX_OUTPUT_BYTES))).toEqual([]);
    expect(parser.overflowed).toBe(true);
    expect(parser.feed(frame(second))).toEqual([]);
  });

  it('caps total output at 10 MiB by default, noise included', () => {
    const parser = new AgentOutputParser();
    const mebibyte = Buffer.alloc(1024 * 1024, 'n');
    for (let i = 0; i < 10; i++) parser.feed(mebibyte);
    expect(parser.overflowed).toBe(false);
    expect(parser.feed(frame(first))).toEqual([]);
    expect(parser.overflowed).toBe(true);
    expect(MAX_OUTPUT_BYTES).toBe(10 * 1024 * 1024);
  });

  it('keeps a frame that is large but under the cap', () => {
    const parser = new AgentOutputParser();
    const big = { status: 'success', result: 'y'.repeat(2 * 1024 * 1024) };
    const text = Buffer.from(frame(big));
    const chunks: Buffer[] = [];
    for (let i = 0; i < text.length; i += 65536) chunks.push(text.subarray(i, i + 65536));
    expect(feedAll(parser, chunks)).toEqual([big]);
  });
});
