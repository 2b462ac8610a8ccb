import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { processText, processTree, spyOnRuntime, type SpawnRecord } from '../helpers/sandbox-spy.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * SPEC §5.1 through real sandboxes: the key in .env reaches the model as the injected header, and
 * nothing the agent can look at holds it — no process environment or command line, no file, not
 * the stdin JSON, not the container's configuration, not the sandbox processes seen from the host.
 *
 * The canary's secret part is random per run. The agent's shell joins it from two halves and hands
 * it to grep through a pipe, so neither the command text (which lands in transcripts and the chat)
 * nor the searching processes' own command lines contain it.
 */
const PLACEHOLDER = 'sk-ant-nanoclaw-placeholder';

/** Every file under `dir` whose bytes contain `needle`, skipping the given paths. */
function filesContaining(dir: string, needle: string, skip: string[]): string[] {
  const hits: string[] = [];
  const walk = (p: string) => {
    if (skip.includes(p)) return;
    const stat = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) for (const entry of fs.readdirSync(p)) walk(path.join(p, entry));
    else if (stat.isFile() && fs.readFileSync(p).includes(needle)) hits.push(p);
  };
  walk(dir);
  return hits;
}

/** The value after `NAME=` on its own line of the agent's answer. */
function field(answer: string, name: string): string {
  const match = new RegExp(`^${name}=(.*)$`, 'm').exec(answer);
  if (!match) throw new Error(`no ${name}= line in the answer:\n${answer}`);
  return match[1]!.trim();
}

describe.each(['docker', 'bwrap'] as const)('keys never enter a sandbox (%s)', (runtime) => {
  const secret = crypto.randomBytes(16).toString('hex');
  const canary = `sk-ant-api03-${secret}`;
  const [head, tail] = [secret.slice(0, 16), secret.slice(16)];
  let host: E2eHost;
  let spawns: SpawnRecord[];

  beforeAll(async () => {
    host = await startE2eHost({
      runtime,
      script: scenarioScript,
      prepare: (home) => {
        const envFile = path.join(home, '.env');
        const text = fs
          .readFileSync(envFile, 'utf8')
          .replace(/^ANTHROPIC_API_KEY=.*$/m, `ANTHROPIC_API_KEY=${canary}`);
        fs.writeFileSync(envFile, text, { mode: 0o600 });
      },
      wrapRuntime: (real) => {
        const spy = spyOnRuntime(real);
        spawns = spy.spawns;
        return spy.runtime;
      },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('injects the key on the way to the model, while no sandbox process holds it (seen from the host)', async () => {
    const marker = path.join(host.home, 'groups', 'main', '.inspect-now');
    // The agent's shell signals, then sleeps: meanwhile the host looks at every sandbox process.
    await host.post('local:main', 'RUN: touch /workspace/group/.inspect-now && sleep 8 && echo inspected');
    await expect.poll(() => fs.existsSync(marker), { timeout: 90_000, interval: 100 }).toBe(true);

    expect(spawns).toHaveLength(1);
    const { spec, child } = spawns[0]!;
    const pids = processTree(child.pid!);
    let inspected = '';
    if (runtime === 'docker') {
      const json = execFileSync('docker', ['inspect', spec.name], { encoding: 'utf8' });
      const [container] = JSON.parse(json) as Array<{
        State: { Pid: number };
        Config: { Env: string[] };
        Args: string[];
        Mounts: unknown[];
      }>;
      expect(container!.Config.Env).toContain('TZ=UTC'); // the inspection sees the real config
      expect(JSON.stringify(container!.Mounts)).toContain('/run/nanoclaw');
      inspected = json;
      pids.push(...processTree(container!.State.Pid));
    }
    const texts = pids.map((pid) => ({ pid, ...processText(pid) }));
    // The agent's sleeping shell is among them, and the SDK's process got the placeholder.
    expect(texts.some((t) => t.cmdline.includes('sleep\n8'))).toBe(true);
    expect(texts.some((t) => t.environ.includes(`ANTHROPIC_API_KEY=${PLACEHOLDER}`))).toBe(true);
    for (const t of texts) {
      expect(t.cmdline, `cmdline of pid ${t.pid}`).not.toContain(secret);
      expect(t.environ, `environ of pid ${t.pid}`).not.toContain(secret);
    }
    expect(inspected).not.toContain(secret);
    expect(JSON.stringify(spec)).not.toContain(secret);

    await host.reply('local:main', (t) => t.startsWith('RESULT:') && t.includes('inspected'));
    // What the host wrote to the sandbox's stdin: the documented AgentInput, nothing else.
    const stdin = spawns[0]!.stdin;
    expect(stdin).not.toContain(secret);
    const input = JSON.parse(stdin) as Record<string, unknown>;
    const documented = [
      'prompt',
      'sessionId',
      'groupFolder',
      'chatJid',
      'isMain',
      'isScheduledTask',
      'assistantName',
    ];
    expect(documented).toEqual(expect.arrayContaining(Object.keys(input)));
    expect(input).toMatchObject({ groupFolder: 'main', chatJid: 'local:main', isMain: true });

    // The model got the real key as x-api-key on every call; the placeholder never left the host.
    const calls = host.mock.requests.filter((r) => r.path.startsWith('/v1/messages'));
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.headers['x-api-key']).toBe(canary);
      expect(call.headers.authorization).toBeUndefined();
      expect(JSON.stringify(call.headers)).not.toContain(PLACEHOLDER);
    }
  }, 180_000);

  it('the agent finds the key in no process environment, command line or file it can read', async () => {
    // docker: the whole filesystem. bwrap: everything but the host's read-only system dirs (/usr
    // and the links into it), which were there before the key was made and are gigabytes.
    const skipped = runtime === 'docker' ? '/proc|/sys|/dev' : '/proc|/sys|/dev|/usr';
    const probe = [
      // The key is assembled in the shell and handed to grep through a pipe, never as an argument;
      // each search runs once for the key and once, as a control, for something that is there.
      `K=${head}; K="\${K}${tail}"; echo "PROBE length=\${#K}"`,
      'has() { grep -F -f <(printf "%s\\n" "$N") "$@"; }',
      `environs() { cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; }`,
      `cmdlines() { cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; }`,
      `inFiles() { for d in /* /dev/shm; do [ -L "$d" ] && continue; case "$d" in ${skipped}) continue;; esac; has -rls "$d"; done; }`,
      'N=$K; echo "ENV=$(environs | has -c)"; echo "CMD=$(cmdlines | has -c)"; inFiles > /tmp/key-hits',
      'echo "FILES=$(wc -l < /tmp/key-hits) $(head -3 /tmp/key-hits | tr "\\n" " ")"',
      `N='ANTHROPIC_API_KEY=${PLACEHOLDER}'; echo "ENV_CONTROL=$(environs | has -c)"`,
      `N='${PLACEHOLDER}'; echo "CMD_CONTROL=$(cmdlines | has -c)"; echo "FILES_CONTROL=$(inFiles | grep -c '^/app/dist/sdk-env.js$')"`,
      'echo "MOUNTED=$(ls -A /run/nanoclaw | tr "\\n" ,)"',
    ].join('\n');
    // Start from a fresh sandbox: the previous one was asked to close (idle) while the agent slept.
    await expect.poll(() => host.app.queue.isActive('local:main'), { timeout: 60_000 }).toBe(false);
    const started = Date.now();
    await host.post('local:main', `RUN: ${probe}`);
    const answer = await host.reply(
      'local:main',
      (t) => t.startsWith('RESULT:') && t.includes('MOUNTED='),
      150_000,
    );
    console.log(`[${runtime}] in-sandbox search took ${Date.now() - started} ms`);

    // Controls first: the key was assembled, and the same searches do find what is there.
    expect(answer).toContain(`PROBE length=${secret.length}`);
    expect(Number(field(answer, 'ENV_CONTROL'))).toBeGreaterThan(0);
    expect(Number(field(answer, 'CMD_CONTROL'))).toBeGreaterThan(0);
    expect(field(answer, 'FILES_CONTROL')).toBe('1');
    expect(field(answer, 'MOUNTED')).toBe('api.sock,egress.sock,');
    expect(field(answer, 'ENV')).toBe('0');
    expect(field(answer, 'CMD')).toBe('0');
    expect(field(answer, 'FILES')).toBe('0');
  }, 180_000);

  it('keeps the key out of the run logs and all state the host writes: it lives in .env alone', async () => {
    await expect.poll(() => host.app.queue.isActive('local:main'), { timeout: 60_000 }).toBe(false);
    const logs = fs.readdirSync(path.join(host.home, 'groups', 'main', 'logs'));
    expect(logs.length).toBeGreaterThan(0);
    // The whole home: group folders and logs, sessions and transcripts, IPC, the database.
    const envFile = path.join(host.home, '.env');
    expect(filesContaining(host.home, secret, [envFile])).toEqual([]);
    expect(fs.readFileSync(envFile, 'utf8')).toContain(secret); // the search would have found it
    expect(JSON.stringify(process.env)).not.toContain(secret);
  }, 120_000);
});
