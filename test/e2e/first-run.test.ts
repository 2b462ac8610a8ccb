import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/config.js';
import { startMockAnthropic, type MockAnthropic } from '../fixtures/mock-anthropic.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * The README's run command on a fresh NANOCLAW_HOME: `npm start` (scripts/run.mjs) prepares what
 * is missing — here the agent image, under a tag of this test's own so it really is missing —
 * starts the host, prints the local chat URL, answers through a real docker sandbox, and exits 0
 * on SIGTERM. (Packages are already installed in this checkout, so that step is a no-op here.)
 */

const IMAGE = `nanoclaw-agent-firstrun:${process.pid}`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Everything the child printed, and a way to wait for a line. */
function capture(child: ChildProcess) {
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const wake of waiters) wake();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    text: () => text,
    waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(text);
          if (match) {
            cleanup();
            resolve(match);
          } else if (child.exitCode !== null) {
            cleanup();
            reject(new Error(`exited with ${child.exitCode} before ${pattern}:\n${text.slice(-4000)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}:\n${text.slice(-4000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', check);
        };
        waiters.add(check);
        child.on('exit', check);
        check();
      });
    },
  };
}

describe('first run: npm start on a fresh machine state (docker)', () => {
  let mock: MockAnthropic | undefined;
  let child: ChildProcess | undefined;
  let home: string | undefined;

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await mock?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
    // Only this test's own tag; the shared nanoclaw-agent:latest stays.
    spawnSync('docker', ['rmi', IMAGE], { stdio: 'ignore' });
  });

  it('builds the missing image with progress, starts, prints the chat URL, answers, and exits 0 on SIGTERM', async () => {
    expect(spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status).not.toBe(0);
    mock = await startMockAnthropic({ script: scenarioScript });
    home = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-first-run-')));
    fs.chmodSync(home, 0o755); // the sandbox user (uid 1000) must reach the group folders
    fs.writeFileSync(
      path.join(home, '.env'),
      `ANTHROPIC_API_KEY=placeholder\nANTHROPIC_BASE_URL=${mock.url}\n`,
      { mode: 0o600 },
    );
    const port = await freePort();

    child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'run.mjs')], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        NANOCLAW_HOME: home,
        NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
        LOCAL_CHANNEL_PORT: String(port),
        CONTAINER_RUNTIME: 'docker',
        CONTAINER_IMAGE: IMAGE,
        IDLE_TIMEOUT: '3000',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = capture(child);

    // Not a terminal: the link is printed without its token, and `nanoclaw open` gives it whole.
    const ready = await out.waitFor(
      /NanoClaw is ready\. Local chat: http:\/\/127\.0\.0\.1:(\d+)\/ /,
      900_000,
    );
    // The image was missing, so it was built, and the build said what it was doing.
    expect(out.text()).toContain(`Building the agent image ${IMAGE} with docker`);
    expect(out.text()).toMatch(/==> \[\d+s\] built nanoclaw-agent-firstrun/);
    expect(spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status).toBe(0);
    expect(Number(ready[1])).toBe(port);
    expect(out.text()).not.toContain('token=');
    const opened = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js'), 'open'], {
      env: { ...process.env, NANOCLAW_HOME: home, LOCAL_CHANNEL_PORT: String(port) },
      encoding: 'utf8',
    });
    const url = new URL(opened.stdout.trim());
    const token = url.searchParams.get('token')!;
    const api = `http://127.0.0.1:${port}/api/chats/${encodeURIComponent('local:main')}/messages`;
    const posted = await fetch(api, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hello from the first run' }),
    });
    expect(posted.status).toBe(202);

    let reply: { text: string; fromAssistant: boolean } | undefined;
    const deadline = Date.now() + 180_000;
    while (!reply && Date.now() < deadline) {
      const res = await fetch(api, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { messages: { text: string; fromAssistant: boolean }[] };
      reply = body.messages.find((m) => m.fromAssistant);
      if (!reply) await new Promise((r) => setTimeout(r, 250));
    }
    expect(reply, out.text().slice(-4000)).toEqual(
      expect.objectContaining({ text: 'ECHO: hello from the first run', fromAssistant: true }),
    );
    // The answer came from the SDK in a real sandbox, through the model proxy with the key from .env.
    const agentCall = mock.requests.find((r) => r.path.startsWith('/v1/messages'));
    expect(agentCall?.headers['x-api-key']).toBe('placeholder');
    expect(out.text()).toMatch(/"msg":"sandbox started"/);

    // SIGTERM: the sandbox is asked to finish, its run is logged, the host exits cleanly.
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited, out.text().slice(-4000)).toBe(0);
    expect(fs.readdirSync(path.join(home, 'groups', 'main', 'logs')).length).toBeGreaterThan(0);
  }, 1_200_000);
});
