import { performance } from 'node:perf_hooks';
import { registerGroup } from '../src/groups.js';
import { startBenchHost, until } from './bench-host.js';

const GROUPS = 10;
/** Messages handed over per event-loop turn, like a channel delivering a burst of network events. */
const BATCH = 50;

/**
 * Ingest throughput through the real channel callback, store and message loop: a burst of
 * messages across several registered groups, none of which triggers an agent (they are context
 * for a later trigger). One sample is the burst's size over the time until the loop has routed
 * the last message (its seen-cursor reached it). Returns messages per second, one per run.
 */
export async function measureIngest(runs: number, perRun: number): Promise<number[]> {
  const host = await startBenchHost({
    behaviour: () => Promise.reject(new Error('no agent should run in the ingest benchmark')),
  });
  const { app, callbacks } = host;
  const samples: number[] = [];
  try {
    for (let g = 0; g < GROUPS; g++)
      registerGroup(app.store, app.config, { jid: `local:g${g}`, name: `g${g}`, folder: `g${g}` });
    const seen = () => Number(app.store.state.get('last_seen_seq') ?? 0);
    let n = 0;
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      let lastSeq = 0;
      for (let sent = 0; sent < perRun; sent += BATCH) {
        for (let i = sent; i < Math.min(perRun, sent + BATCH); i++, n++) {
          callbacks.onMessage({
            id: `bm-${n}`,
            chatJid: `local:g${n % GROUPS}`,
            sender: `user${n % 7}`,
            senderName: `User ${n % 7}`,
            content: `message ${n}: some ordinary chat text that does not call the assistant`,
            timestamp: new Date().toISOString(),
            isFromMe: false,
            isBotMessage: false,
          });
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      lastSeq = app.store.messages.latestSeq();
      await until('the loop has routed the burst', () => seen() >= lastSeq, 30_000);
      samples.push(perRun / ((performance.now() - started) / 1000));
    }
    if (app.queue.runningCount > 0) throw new Error('an agent run started during the ingest benchmark');
  } finally {
    await host.stop();
  }
  return samples;
}
