import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic } from '../fixtures/mock-anthropic.js';
import {
  ensureHostBuild,
  killHost,
  logLines,
  makeHostHome,
  routerState,
  startHostProcess,
  withDb,
  type HostProcess,
} from '../helpers/host-process.js';
import { PrivateDockerd } from '../helpers/private-dockerd.js';
import { ensureBusyboxImage } from './runtime-helpers.js';

const FAKE_AGENT_IMAGE = 'nanoclaw-test-fake-agent:latest';

/**
 * Stands in for the agent-runner: reads the input, finds the `ping-…` word of the message, and
 * answers in the host's output framing. While groups/<folder>/hold exists it waits first, so a
 * test can stop the runtime in the middle of a run.
 */
const FAKE_AGENT = `
input=$(head -n 1)
word=$(printf '%s' "$input" | grep -o 'ping-[a-z0-9]*' | head -n 1)
touch "/workspace/group/started-$word"
while [ -e /workspace/group/hold ]; do sleep 0.2; done
echo '---NANOCLAW_OUTPUT_START---'
echo "{\\"status\\":\\"success\\",\\"result\\":\\"FAKE-ANSWER $word\\"}"
echo '---NANOCLAW_OUTPUT_END---'
`;

/**
 * The runtime daemon goes away in the middle of a run. The daemon here is a second dockerd of the
 * test's own (the shared one is never touched), holding only a busybox image with a fake agent.
 */
describe('runtime daemon killed mid-run', () => {
  let dockerd: PrivateDockerd;
  let mock: MockAnthropic;
  let home: string;
  let host: HostProcess | undefined;

  beforeAll(async () => {
    ensureHostBuild();
    ensureBusyboxImage();
    dockerd = new PrivateDockerd();
    await dockerd.start();
    dockerd.loadImage('nanoclaw-test-busybox:latest');
    const script = path.join(dockerd.dir, 'fake-agent.sh');
    fs.writeFileSync(script, FAKE_AGENT, { mode: 0o644 });
    const build = 'nanoclaw-fake-agent-build';
    for (const args of [
      ['create', '--name', build, 'nanoclaw-test-busybox:latest', 'true'],
      ['cp', script, `${build}:/fake-agent.sh`],
      ['commit', '--change', 'ENTRYPOINT ["/bin/sh", "/fake-agent.sh"]', build, FAKE_AGENT_IMAGE],
      ['rm', build],
    ]) {
      const result = dockerd.docker(args);
      if (result.status !== 0) throw new Error(`docker ${args[0]} failed: ${result.stderr}`);
    }
    mock = await startMockAnthropic();
    home = makeHostHome(mock.url);
  });

  afterAll(async () => {
    await killHost(host);
    await dockerd?.destroy();
    await mock?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
    // Nothing of the private daemon may survive the test.
    expect(dockerd ? dockerd.leftoverPids() : []).toEqual([]);
  });

  it('tells the person plainly, keeps the message and answers it once the runtime is back', async () => {
    host = await startHostProcess(home, {
      CONTAINER_RUNTIME: 'docker',
      CONTAINER_IMAGE: FAKE_AGENT_IMAGE,
      DOCKER_HOST: dockerd.host,
    });
    const groupDir = path.join(home, 'groups', 'main');
    fs.writeFileSync(path.join(groupDir, 'hold'), '');
    expect((await host.post('local:main', 'ping-one')).status).toBe(202);

    // The run is under way inside a container of the private daemon: now the daemon dies.
    await expect
      .poll(() => fs.existsSync(path.join(groupDir, 'started-ping-one')), { timeout: 60_000 })
      .toBe(true);
    const killedAt = Date.now();
    await dockerd.kill();
    fs.rmSync(path.join(groupDir, 'hold'));

    // The runner finds no daemon: the person is told, in plain words, once.
    const notice = (
      await host.waitForReply('local:main', (t) => t.includes('container runtime'), 60_000)
    ).find((t) => t.includes('container runtime'))!;
    expect(notice).toMatch(/^I can’t start my sandbox: the container runtime is not available\./);
    expect(notice).not.toMatch(/docker\.sock|unix:|Error:/);
    const noticeAfterMs = Date.now() - killedAt;

    // Nothing was lost: the message waits behind the agent cursor while the runtime is down.
    const seq = withDb(
      home,
      (db) =>
        (
          db
            .prepare("SELECT seq FROM messages WHERE chat_jid = 'local:main' AND content = 'ping-one'")
            .get() as {
            seq: number;
          }
        ).seq,
    );
    expect(Number(routerState(home, 'agent_seq:local:main') ?? 0)).toBeLessThan(seq);

    // No retries meanwhile: a cheap check finds the daemon back and the message is answered, once.
    // The notice now comes within a second of the kill; a dockerd restarted that soon cannot bring
    // its containerd up (the killed one's state is still being torn down), so wait a little first.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    await dockerd.start();
    const texts = await host.waitForReply('local:main', (t) => t === 'FAKE-ANSWER ping-one', 120_000);
    expect(texts.filter((t) => t === 'FAKE-ANSWER ping-one')).toHaveLength(1);
    expect(texts.filter((t) => t.includes('container runtime'))).toHaveLength(1);
    expect(texts.indexOf(notice)).toBeLessThan(texts.indexOf('FAKE-ANSWER ping-one'));
    expect(Number(routerState(home, 'agent_seq:local:main'))).toBeGreaterThanOrEqual(seq);
    // The rollback point is cleared when the run ends, a moment after the answer went out.
    await expect
      .poll(() => routerState(home, 'agent_run:local:main'), { timeout: 30_000, interval: 100 })
      .toBe('');

    // The failure was logged with its cause, and no sandbox was tried while the daemon was down.
    const failed = logLines(host.log(), 'run failed; messages wait');
    expect(failed).toHaveLength(1);
    expect(JSON.stringify(failed)).toContain('runtime-missing');
    expect(logLines(host.log(), 'run failed; messages will be retried')).toHaveLength(0);
    expect(host.proc.exitCode).toBeNull();
    console.info(`runtime-down: notice ${noticeAfterMs} ms after the kill; ${failed.length} failed runs`);
  }, 180_000);
});
