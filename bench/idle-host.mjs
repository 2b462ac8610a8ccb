// The production host (dist/, as `npm start` runs it) idling with many registered groups; prints
// its resident set size as one JSON line. A separate process so that nothing of the benchmark
// itself is counted. WhatsApp is not linked, so its channel loads but opens no socket.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const groups = Number(process.argv[2] ?? 100);
const settleMs = Number(process.argv[3] ?? 3000);
const dist = new URL('../dist/', import.meta.url);
const { loadConfig } = await import(new URL('config.js', dist).href);
const { App } = await import(new URL('app.js', dist).href);
const { registerGroup } = await import(new URL('groups.js', dist).href);
const { DockerRuntime } = await import(new URL('sandbox/runtimes/docker.js', dist).href);

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-bench-idle-'));
const config = loadConfig({
  NANOCLAW_HOME: home,
  NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
  TZ: 'UTC',
  LOCAL_CHANNEL_PORT: '0',
});
// No message arrives, so the runtime is never asked to start a sandbox.
const app = await App.create(config, new DockerRuntime());
for (let i = 1; i < groups; i++)
  registerGroup(app.store, config, { jid: `local:group${i}`, name: `Group ${i}`, folder: `group${i}` });
await app.start();
await sleep(settleMs);
const samples = [];
for (let i = 0; i < 5; i++) {
  samples.push(process.memoryUsage().rss);
  await sleep(200);
}
samples.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({ groups: app.store.groups.all().length, rssBytes: samples[2] })}\n`);
await app.stop();
fs.rmSync(home, { recursive: true, force: true });
