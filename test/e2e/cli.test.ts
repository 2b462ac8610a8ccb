import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HostControl, WhatsAppState } from '../../src/channels/control.js';
import { PROJECT_ROOT } from '../../src/config.js';
import { openStore } from '../../src/db/store.js';
import { ensureHostBuild } from '../helpers/host-process.js';
import { startHarness } from '../helpers/local-harness.js';
import { OWN_PN, writeLinkedCreds } from '../unit/whatsapp-fake-socket.js';

// The built `nanoclaw` (dist/), run in an empty temp dir that is its cwd, HOME and NANOCLAW_HOME.
const MAIN = path.join(PROJECT_ROOT, 'dist/cli/main.js');
beforeAll(() => ensureHostBuild());
const VERSION = (
  JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempHome(): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-cli-')));
  temps.push(dir);
  return dir;
}

function envFor(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    LOCAL_CHANNEL_PORT: '0',
    CONTAINER_RUNTIME: 'docker',
    ...extra,
  };
}

const command = (args: string[]) => [process.execPath, MAIN, ...args];
const shellQuote = (args: string[]) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

/** One run; `tty`: inside `script`, so stdout and stderr are a terminal (and arrive together on stdout). */
async function cli(
  args: string[],
  opts: { home?: string; env?: Record<string, string>; tty?: boolean } = {},
) {
  const home = opts.home ?? tempHome();
  const [cmd, ...rest] = opts.tty
    ? ['script', '-qec', shellQuote(command(args)), '/dev/null']
    : command(args);
  const child = spawn(cmd!, rest, {
    cwd: home,
    env: envFor(home, opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out, err, home };
}

const HELP_CASES = [
  ['start'],
  ['doctor'],
  ['build'],
  ['whatsapp-auth'],
  ['groups'],
  ['groups', 'register'],
  ['tasks', 'pause'],
  ['tasks', 'runs'],
  ['chat'],
  ['stop'],
  ['whatsapp-unlink'],
  ['open'],
  ['service', 'install'],
];

describe('nanoclaw help, version and usage errors', () => {
  it('prints the help with the exit codes on --help and -h; without a command it is a usage error', async () => {
    const flags = ['--help', '-h'];
    for (const [i, r] of (await Promise.all(flags.map((flag) => cli([flag])))).entries()) {
      expect(r.code, flags[i]).toBe(0);
      expect(r.out).toContain('nanoclaw groups list [--json]');
      for (const line of [
        'nanoclaw stop <chat>',
        'nanoclaw tasks runs <id> [--json]',
        'nanoclaw whatsapp-unlink\n',
        'nanoclaw groups register (--name <whatsapp group> | --jid <id> --name <name> --folder <folder>)',
      ])
        expect(r.out).toContain(line);
      expect(r.out).toContain('exit codes: 0 ok, 1 failed, 2 usage error');
      expect(r.err).toBe('');
    }
    const none = await cli([]);
    expect(none).toMatchObject({ code: 2, out: '' });
    expect(none.err).toContain('usage:');
  }, 60_000);

  it('prints the package version', async () => {
    expect(await cli(['--version'])).toMatchObject({ code: 0, out: `${VERSION}\n`, err: '' });
  });

  it('--help on every command and subcommand prints its help and does nothing else', async () => {
    const runs = await Promise.all(HELP_CASES.map((args) => cli([...args, '--help'])));
    runs.forEach((r, i) => {
      const args = HELP_CASES[i]!;
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.out).toContain(`nanoclaw ${args[0]}`);
      expect(r.err).toBe('');
      expect(fs.readdirSync(r.home), `${args.join(' ')} --help made state`).toEqual([]);
    });
  }, 180_000);

  it('rejects unknown commands, subcommands, flags and arguments with exit 2 on stderr', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /^error: unknown command 'frobnicate'/],
      [['service', 'restart'], /^error: unknown service command 'restart'/],
      [['service'], /^error: 'nanoclaw service' needs a subcommand\nusage:\n {2}nanoclaw service install/],
      [['groups', 'list', '--bogus'], /^error: Unknown option '--bogus'/],
      [['start', '--bogus'], /^error: Unknown option '--bogus'/],
      [['doctor', 'extra'], /^error: unexpected argument 'extra'/],
      [['tasks', 'pause'], /^error: 'nanoclaw tasks pause' needs <id>/],
      [['whatsapp-auth', '--pairing-code'], /^error: Option '--pairing-code <value>' argument missing/],
      [
        ['groups', 'register', '--jid', 'x@g.us'],
        /^error: give --name of a known WhatsApp group, or --jid, --name/,
      ],
      [
        ['groups', 'register'],
        /^error: give --name of a known WhatsApp group, or --jid, --name and --folder/,
      ],
      [['stop'], /^error: 'nanoclaw stop' needs <chat>/],
      [['stop', 'a', 'b'], /^error: unexpected argument 'b'/],
      [['tasks', 'runs'], /^error: 'nanoclaw tasks runs' needs <id>/],
      [['whatsapp-unlink', '--bogus'], /^error: Unknown option '--bogus'/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    runs.forEach((r, i) => {
      const [args, message] = cases[i]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out, args.join(' ')).toBe('');
      expect(r.err, args.join(' ')).toMatch(message);
      expect(fs.readdirSync(r.home)).toEqual([]);
    });
  }, 180_000);

  it('sends failures to stderr with exit 1', async () => {
    const r = await cli(['open']);
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toContain('No local chat token at');
  });
});

describe('read-only commands', () => {
  it('create no state, and --json gives JSON', async () => {
    const home = tempHome();
    const [groups, tasks, groupsJson, tasksJson, status, doctor, open, runs, stop, unlink, byName] =
      await Promise.all(
        [
          ['groups', 'list'],
          ['tasks', 'list'],
          ['groups', 'list', '--json'],
          ['tasks', 'list', '--json'],
          ['service', 'status', '--json'],
          ['doctor', '--json'],
          ['open'],
          ['tasks', 'runs', 'nope'],
          ['stop', 'local:main'],
          ['whatsapp-unlink'],
          ['groups', 'register', '--name', 'Family'],
        ].map((args) => cli(args, { home })),
      );
    expect(runs).toMatchObject({ code: 1, out: '', err: "error: task 'nope' not found\n" });
    expect(stop).toMatchObject({ code: 1, out: '' });
    expect(stop!.err).toMatch(/^No local chat token at .*\. Start the assistant: `nanoclaw start`\.\n$/);
    expect(unlink).toMatchObject({ code: 1, out: '' });
    expect(unlink!.err).toMatch(/^No local chat token at .*nanoclaw start/);
    expect(byName).toMatchObject({ code: 1, out: '' });
    expect(byName!.err).toMatch(/^error: no known WhatsApp group is named 'Family'/);
    expect(groups).toMatchObject({ code: 0, out: 'No registered groups.\n', err: '' });
    expect(tasks).toMatchObject({ code: 0, out: 'No scheduled tasks.\n', err: '' });
    expect(JSON.parse(groupsJson!.out)).toEqual({ groups: [], chats: [] });
    expect(JSON.parse(tasksJson!.out)).toEqual({ tasks: [] });
    expect(status!.code).toBe(1);
    expect(JSON.parse(status!.out)).toMatchObject({ installed: false });
    const report = JSON.parse(doctor!.out) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
    expect(doctor!.code).toBe(report.ok ? 0 : 1);
    expect(report.checks.find((c) => c.name === 'credentials')?.ok).toBe(false);
    expect(doctor!.err).toBe(''); // no log lines without --verbose
    expect(open!.code).toBe(1);
    expect(fs.readdirSync(home)).toEqual([]);
  }, 180_000);

  it('read an existing store without changing it', async () => {
    const home = tempHome();
    const reg = await cli(
      ['groups', 'register', '--jid', 'local:fam', '--name', 'Family', '--folder', 'fam'],
      { home },
    );
    expect(reg).toMatchObject({ code: 0, out: "Registered local:fam as 'fam'.\n" });
    const db = path.join(home, 'store', 'messages.db');
    const before = fs.readFileSync(db);
    const [list, tasks] = await Promise.all([
      cli(['groups', 'list', '--json'], { home }),
      cli(['tasks', 'list'], { home }),
    ]);
    expect((JSON.parse(list.out) as { groups: Array<{ jid: string }> }).groups.map((g) => g.jid)).toEqual([
      'local:fam',
    ]);
    expect(tasks.out).toBe('No scheduled tasks.\n');
    expect(fs.readFileSync(db).equals(before)).toBe(true);
  }, 120_000);
});

/** A host that answers the local channel's controls and records what it was asked. */
function fakeControl(running: Set<string>) {
  const calls = { stopped: [] as string[], unlinks: 0 };
  let state: WhatsAppState = { status: 'linked', selfJid: OWN_PN };
  const control: HostControl = {
    stopChat: async (jid) => (calls.stopped.push(jid), running.delete(jid)),
    tasks: () => [],
    taskAction: () => ({ ok: true }),
    typing: () => undefined,
    whatsapp: {
      state: () => state,
      link: async () => undefined,
      unlink: async () => {
        calls.unlinks++;
        state = { status: 'unlinked' };
      },
      groups: () => [],
      register: async () => ({ ok: false, error: 'unused' }),
      onChange: () => () => undefined,
    },
  };
  return { control, calls };
}

describe('commands through the running assistant', () => {
  it("stop ends the chat's running agent once, then says nothing was running", async () => {
    const { control, calls } = fakeControl(new Set(['local:main']));
    const h = await startHarness({ control });
    const env = { LOCAL_CHANNEL_PORT: String(h.channel.port) };
    const first = await cli(['stop', 'main'], { home: h.home, env });
    expect(first).toMatchObject({ code: 0, out: 'Stopped the agent in local:main.\n', err: '' });
    const again = await cli(['stop', 'local:main'], { home: h.home, env });
    expect(again).toMatchObject({ code: 0, out: 'Nothing was running in local:main.\n', err: '' });
    expect(calls.stopped).toEqual(['local:main', 'local:main']);
  }, 60_000);

  it('stop exits 1 when no assistant answers, or when it refuses the token', async () => {
    const h = await startHarness({ control: fakeControl(new Set()).control });
    const port = h.channel.port;
    await h.channel.disconnect();
    const down = await cli(['stop', 'local:main'], {
      home: h.home,
      env: { LOCAL_CHANNEL_PORT: String(port) },
    });
    expect(down).toMatchObject({ code: 1, out: '' });
    expect(down.err).toMatch(
      /^The assistant is not running at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\. Start the assistant/,
    );
    const other = await startHarness({ control: fakeControl(new Set()).control });
    const wrong = await cli(['stop', 'local:main'], {
      home: h.home,
      env: { LOCAL_CHANNEL_PORT: String(other.channel.port) },
    });
    expect(wrong).toMatchObject({ code: 1, out: '' });
    expect(wrong.err).toContain('refused the token');
  }, 60_000);

  it('whatsapp-unlink leaves the session to the running assistant', async () => {
    const { control, calls } = fakeControl(new Set());
    const h = await startHarness({ control });
    const authDir = path.join(h.home, 'store', 'auth');
    writeLinkedCreds(authDir);
    const r = await cli(['whatsapp-unlink'], {
      home: h.home,
      env: { LOCAL_CHANNEL_PORT: String(h.channel.port) },
    });
    expect(r).toMatchObject({
      code: 0,
      out: 'WhatsApp is unlinked and its credentials are deleted.\n',
      err: '',
    });
    expect(calls.unlinks).toBe(1);
    // The CLI itself neither connected nor touched the credentials: that was the host's job.
    expect(fs.readdirSync(authDir)).toEqual(['creds.json']);
  }, 60_000);
});

describe('tasks runs and groups by name, from the store', () => {
  it('tasks runs shows the task and its history, as text or JSON, without changing the store', async () => {
    const home = tempHome();
    const db = path.join(home, 'store', 'messages.db');
    const store = openStore(db);
    store.tasks.create({
      id: 't1',
      groupFolder: 'main',
      chatJid: 'local:main',
      prompt: 'p',
      scheduleType: 'cron',
      scheduleValue: '0 9 * * *',
      contextMode: 'group',
      nextRun: '2030-01-01T09:00:00.000Z',
      lastRun: null,
      lastResult: null,
      status: 'active',
      createdAt: '2029-12-01T00:00:00.000Z',
    });
    store.tasks.recordRun({
      taskId: 't1',
      runAt: '2029-12-31T09:00:00.000Z',
      durationMs: 4200,
      status: 'success',
      result: 'Done',
      error: null,
    });
    store.close();
    const before = fs.readFileSync(db);
    const env = { TZ: 'UTC' };
    const [text, json] = await Promise.all([
      cli(['tasks', 'runs', 't1'], { home, env }),
      cli(['tasks', 'runs', 't1', '--json'], { home, env }),
    ]);
    expect(text.code).toBe(0);
    expect(text.out).toContain('Task t1 (main), active, cron 0 9 * * *, next run 2030-01-01 09:00:00\n');
    expect(text.out).toMatch(/^2029-12-31 09:00:00\s+4\.2s\s+success\s+Done$/m);
    expect(JSON.parse(json.out)).toMatchObject({
      task: { id: 't1' },
      runs: [{ durationMs: 4200, result: 'Done' }],
    });
    expect(fs.readFileSync(db).equals(before)).toBe(true);
  }, 60_000);

  it('groups list shows WhatsApp groups by name; register --name finds one and picks a free folder', async () => {
    const home = tempHome();
    const store = openStore(path.join(home, 'store', 'messages.db'));
    const chat = (jid: string, name: string, isGroup = true, channel = 'whatsapp') =>
      store.messages.upsertChat({ jid, name, timestamp: '2030-01-01T00:00:00.000Z', channel, isGroup });
    chat('111@g.us', 'Family & Friends!');
    chat('222@g.us', 'Work');
    chat('333@g.us', 'work');
    chat('4915@s.whatsapp.net', 'Bob', false);
    chat('local:side', 'side', false, 'local');
    store.close();
    fs.mkdirSync(path.join(home, 'groups', 'family-friends'), { recursive: true });

    const list = await cli(['groups', 'list'], { home });
    expect(list.code).toBe(0);
    expect(list.out).toContain('Not registered (nanoclaw groups register --name <WhatsApp group>):');
    expect(list.out).toMatch(/^ {2}Family & Friends! {2}111@g\.us$/m);
    expect(list.out).toMatch(/^ {2}Bob {2}4915@s\.whatsapp\.net$/m);

    const reg = await cli(['groups', 'register', '--name', 'family & friends!'], { home });
    expect(reg).toMatchObject({ code: 0, out: "Registered 111@g.us as 'family-friends-2'.\n", err: '' });
    const [ambiguous, unknown, notAGroup] = await Promise.all(
      [['Work'], ['Nope'], ['Bob']].map(([name]) => cli(['groups', 'register', '--name', name!], { home })),
    );
    expect(ambiguous).toMatchObject({ code: 1, out: '' });
    expect(ambiguous!.err).toBe(
      "error: 2 WhatsApp groups are named 'Work'; pick one with --jid:\n" +
        '  Work  222@g.us\n  work  333@g.us\n',
    );
    expect(unknown!.err).toBe("error: no known WhatsApp group is named 'Nope'; see nanoclaw groups list\n");
    expect(notAGroup).toMatchObject({ code: 1 });

    const after = JSON.parse((await cli(['groups', 'list', '--json'], { home })).out) as {
      groups: Array<{ jid: string; folder: string; name: string }>;
    };
    expect(after.groups).toEqual([
      expect.objectContaining({ jid: '111@g.us', folder: 'family-friends-2', name: 'Family & Friends!' }),
    ]);
    expect(fs.existsSync(path.join(home, 'groups', 'family-friends-2', 'CLAUDE.md'))).toBe(true);
  }, 120_000);
});

describe('colours and log lines', () => {
  it('colours doctor marks on a terminal only, and never with NO_COLOR', async () => {
    const [tty, noColor, piped] = await Promise.all([
      cli(['doctor'], { tty: true }),
      cli(['doctor'], { tty: true, env: { NO_COLOR: '1' } }),
      cli(['doctor']),
    ]);
    expect(tty.out).toContain('[\x1b[31mFAIL\x1b[0m] credentials: ');
    expect(tty.out).not.toContain('{"level"');
    expect(noColor.out).toMatch(/^\[FAIL\] credentials: /m);
    expect(noColor.out).not.toContain('\x1b[');
    expect(piped.out).toMatch(/^\[FAIL\] credentials: /m);
    expect(piped.out).not.toContain('\x1b[');
  }, 120_000);

  /** `start` until its first log line, then stopped; the missing image makes it warn at once. */
  async function startLogs(opts: { tty: boolean; env?: Record<string, string> }): Promise<string> {
    const home = tempHome();
    const env = envFor(home, { CONTAINER_IMAGE: 'nanoclaw-cli-absent:none', LOG_LEVEL: 'info', ...opts.env });
    const args = command(['start']);
    const child = opts.tty
      ? spawn('script', ['-qec', shellQuote(args), '/dev/null'], { cwd: home, env, detached: true })
      : spawn(args[0]!, args.slice(1), { cwd: home, env, detached: true });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    try {
      await vi.waitFor(() => expect(text).toContain('agent image missing'), {
        timeout: 30_000,
        interval: 100,
      });
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
    return text;
  }

  it('start logs pretty lines on a terminal and JSON lines elsewhere', async () => {
    const plain = await startLogs({ tty: true, env: { NO_COLOR: '1' } });
    expect(plain).toMatch(
      /^\d\d:\d\d:\d\d WARN {2}agent image missing: run `nanoclaw build` image=nanoclaw-cli-absent:none\r?$/m,
    );
    expect(await startLogs({ tty: true })).toContain('\x1b[33mWARN \x1b[39m agent image missing');
    const json = (await startLogs({ tty: false })).split('\n').find((l) => l.includes('agent image missing'));
    expect(JSON.parse(json!)).toMatchObject({ level: 40, image: 'nanoclaw-cli-absent:none' });
  }, 120_000);

  it('refuses an invalid LOG_LEVEL, from the environment or from .env, in one line', async () => {
    const home = tempHome();
    fs.writeFileSync(path.join(home, '.env'), 'LOG_LEVEL=loud\n');
    const [fromEnv, fromFile] = await Promise.all([
      cli(['groups', 'list'], { env: { LOG_LEVEL: 'verbose' } }),
      cli(['tasks', 'list'], { home }),
    ]);
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.err).toBe(
      'LOG_LEVEL=verbose is not a log level; use one of: trace, debug, info, warn, error, fatal, silent\n',
    );
    expect(fromFile.code).toBe(1);
    expect(fromFile.err).toMatch(/^LOG_LEVEL=loud is not a log level; use one of: trace, .*\n$/);
  }, 60_000);
});
