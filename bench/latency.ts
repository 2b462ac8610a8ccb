import type { RuntimeKind } from '../src/config.js';
import { startBenchHost, sleep, until } from './bench-host.js';

export interface LatencySamples {
  /** accepted → the model request carrying the message, in a fresh sandbox (ms). */
  cold: number[];
  /** accepted → the model request carrying a follow-up, sandbox already running and idle (ms). */
  followUp: number[];
  /** accepted → reply delivered to the channel, sandbox running and idle, instant model (ms). */
  reply: number[];
}

const CHAT = 'local:main';

/**
 * Message latencies through the real host, sandbox runtime, agent-runner and Claude Agent SDK,
 * with the scripted mock answering at once. The main group needs no trigger, so every post runs.
 */
export async function measureLatency(
  kind: RuntimeKind,
  runs: { cold: number; warm: number },
  progress: (line: string) => void,
): Promise<LatencySamples> {
  const host = await startBenchHost({ runtime: kind });
  const samples: LatencySamples = { cold: [], followUp: [], reply: [] };
  const { app, checkpoints } = host;
  const closeSandbox = async () => {
    app.queue.closeStdin(CHAT);
    await until('the sandbox has exited', () => !app.queue.isActive(CHAT));
  };
  try {
    // Cold: every message starts a sandbox, which resumes the group's session like a real
    // conversation after the idle timeout. The first run (a brand-new session) is a warm-up.
    for (let i = 0; i <= runs.cold; i++) {
      const marker = `bm-c${i}`;
      await host.post(CHAT, `hello ${marker}`);
      const accepted = await checkpoints.wait('accepted', marker);
      const model = await checkpoints.wait('model', marker);
      await checkpoints.wait('delivered', marker);
      if (i > 0) samples.cold.push(model - accepted);
      await closeSandbox();
    }
    progress(`${kind}: ${runs.cold} cold starts`);

    // Warm: one sandbox answers, then each follow-up goes into it while it idles.
    await host.post(CHAT, 'warm up bm-w');
    await checkpoints.wait('delivered', 'bm-w');
    for (let i = 0; i < runs.warm; i++) {
      const marker = `bm-f${i}`;
      await sleep(100); // let the sandbox settle into waiting for input
      if (!app.queue.isActive(CHAT)) throw new Error('the warm sandbox exited between follow-ups');
      await host.post(CHAT, `again ${marker}`);
      const accepted = await checkpoints.wait('accepted', marker);
      const model = await checkpoints.wait('model', marker);
      const delivered = await checkpoints.wait('delivered', marker);
      samples.followUp.push(model - accepted);
      samples.reply.push(delivered - accepted);
    }
    progress(`${kind}: ${runs.warm} follow-ups`);
    await closeSandbox();
  } finally {
    await host.stop();
  }
  return samples;
}
