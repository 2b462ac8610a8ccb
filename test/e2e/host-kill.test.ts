import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isAgentTurn,
  lastUserText,
  startMockAnthropic,
  type MockAnthropic,
} from '../fixtures/mock-anthropic.js';
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
import { ensureBusyboxImage } from './runtime-helpers.js';

/** Holds the model's answer to a "SLOW" message until the test opens the gate. */
function gatedModel() {
  let open!: () => void;
  const gate = { arrived: false, opened: new Promise<void>((resolve) => (open = resolve)), open };
  const script = async ({ body }: { body: unknown }) => {
    if (!isAgentTurn(body)) return { text: 'ok' };
    const text = lastUserText(body);
    const bodies = [...text.matchAll(/<message [^>]*>([\s\S]*?)<\/message>/g)].map((m) => m[1]!);
    const last = (bodies.at(-1) ?? text).trim();
    if (last.startsWith('SLOW')) {
      gate.arrived = true;
      await gate.opened;
    }
    return { text: `ECHO: ${last}` };
  };
  return { gate, script };
}

const docker = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8' });
const containersOf = (instance: string) =>
  docker('ps', '-a', '--filter', `label=nanoclaw.instance=${instance}`, '--format', '{{.Names}}')
    .stdout.split('\n')
    .filter(Boolean);
/** Host processes still running for this home (a sandbox's bwrap carries its paths in argv). */
const processesUnder = (home: string) =>
  fs.readdirSync('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(home);
    } catch {
      return false;
    }
  });

/**
 * The host process is SIGKILLed while an agent is working on a message. After a restart nothing is
 * lost, nothing is answered twice, this instance's leftover sandboxes are gone (another
 * instance's are not), and the database is intact.
 */
describe.each(['docker', 'bwrap'] as const)('host killed mid-run (%s)', (runtime) => {
  let mock: MockAnthropic;
  let home: string;
  let host: HostProcess | undefined;
  const model = gatedModel();
  const foreign = `nanoclaw-rel-foreign-${crypto.randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    ensureHostBuild();
    if (runtime === 'docker') ensureBusyboxImage();
    mock = await startMockAnthropic({ script: model.script });
    home = makeHostHome(mock.url);
  });
  afterAll(async () => {
    model.gate.open();
    await killHost(host);
    if (runtime === 'docker') docker('rm', '-f', foreign);
    await mock?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('loses no message, answers none twice, cleans up its sandboxes, keeps the database intact', async () => {
    const env = { CONTAINER_RUNTIME: runtime, IDLE_TIMEOUT: '60000' };
    const instance = crypto.createHash('sha256').update(home).digest('hex').slice(0, 12);
    host = await startHostProcess(home, env);
    await host.post('local:main', 'hello');
    await host.waitForReply('local:main', (t) => t === 'ECHO: hello');

    // A follow-up goes into the running sandbox; the model is working on it when the host dies.
    await host.post('local:main', 'SLOW second question');
    await expect.poll(() => model.gate.arrived, { timeout: 60_000 }).toBe(true);
    const sandboxesBefore = runtime === 'docker' ? containersOf(instance) : [];
    host.proc.kill('SIGKILL');
    await host.exited;

    if (runtime === 'docker') {
      // The killed host's sandbox lives on; so does one of another installation.
      expect(sandboxesBefore).toHaveLength(1);
      expect(containersOf(instance)).toEqual(sandboxesBefore);
      const started = docker(
        'run',
        '-d',
        '--rm',
        '--network',
        'none',
        '--name',
        foreign,
        '--label',
        `nanoclaw.instance=other-${instance}`,
        'nanoclaw-test-busybox:latest',
        'sleep',
        '300',
      );
      expect(started.status, started.stderr).toBe(0);
    } else {
      // bwrap sandboxes die with their parent: nothing of this home keeps running.
      await expect.poll(() => processesUnder(home), { timeout: 15_000 }).toEqual([]);
    }

    model.gate.open();
    host = await startHostProcess(home, env);
    const texts = await host.waitForReply('local:main', (t) => t === 'ECHO: SLOW second question');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await host.assistantTexts('local:main')).toEqual(['ECHO: hello', 'ECHO: SLOW second question']);
    expect(texts).toContain('ECHO: hello');

    // What the new host did about the interrupted run.
    expect(logLines(host.log(), 'rolling back a run interrupted by a host stop')).toHaveLength(1);
    if (runtime === 'docker') {
      expect(logLines(host.log(), 'stopped leftover sandboxes of this instance')).toHaveLength(1);
      const now = containersOf(instance);
      for (const old of sandboxesBefore) expect(now).not.toContain(old);
      expect(docker('ps', '--filter', `name=${foreign}`, '--format', '{{.Names}}').stdout.trim()).toBe(
        foreign,
      );
    }

    // SQLite: consistent, each inbound message once, each answer once, cursor past both.
    const rows = withDb(home, (db) => {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      return db
        .prepare(
          "SELECT seq, content, is_bot_message AS bot FROM messages WHERE chat_jid = 'local:main' ORDER BY seq",
        )
        .all() as Array<{ seq: number; content: string; bot: number }>;
    });
    expect(rows.map((r) => [r.content, r.bot])).toEqual([
      ['hello', 0],
      ['ECHO: hello', 1],
      ['SLOW second question', 0],
      ['ECHO: SLOW second question', 1],
    ]);
    expect(Number(routerState(home, 'agent_seq:local:main'))).toBe(rows[2]!.seq);

    host.proc.kill('SIGTERM');
    expect(await host.exited).toEqual({ code: 0, signal: null });
    withDb(home, (db) => expect(db.pragma('integrity_check', { simple: true })).toBe('ok'));
    if (runtime === 'docker') expect(containersOf(instance)).toEqual([]);
  });
});
