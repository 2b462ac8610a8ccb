import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  realExec,
  renderLaunchdPlist,
  renderSystemdUnit,
  runServiceCommand,
  serviceSpec,
} from '../../src/cli/service.js';

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-service-'));
  temps.push(dir);
  return dir;
}

/** A project with a built entry point, a state home and a user home, all in a temp dir. */
function setup(opts: { built?: boolean } = {}) {
  const root = tempDir();
  const projectRoot = path.join(root, 'project');
  const entry = path.join(projectRoot, 'dist', 'cli', 'main.js');
  if (opts.built !== false) {
    fs.mkdirSync(path.dirname(entry), { recursive: true });
    fs.writeFileSync(entry, '');
  }
  const config = { projectRoot, home: path.join(root, 'state'), configDir: path.join(root, 'cfg') };
  return { root, projectRoot, config, homeDir: path.join(root, 'user') };
}

/** A service manager stand-in: records every call and answers from a table. */
function fakeExec(
  answers: (cmd: string, args: string[]) => Partial<ReturnType<typeof realExec>> = () => ({}),
) {
  const calls: string[] = [];
  const exec: typeof realExec = (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    return { code: 0, stdout: '', stderr: '', ...answers(cmd, args) };
  };
  return { exec, calls };
}

function run([sub]: string[], deps: Omit<Parameters<typeof runServiceCommand>[1], 'out'>) {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const code = runServiceCommand(sub!, { ...deps, out });
  return { code, text };
}

const spec = () => {
  vi.stubEnv('PATH', '/usr/bin:/bin');
  vi.stubEnv('ASSISTANT_NAME', 'Jo');
  vi.stubEnv('ANTHROPIC_API_KEY', 'sk-ant-must-not-appear');
  return serviceSpec(
    { projectRoot: '/srv/my nanoclaw', home: '/srv/state', configDir: '/home/me/.config/nanoclaw' },
    '/usr/bin/node',
  );
};
afterEach(() => vi.unstubAllEnvs());

describe('service files', () => {
  it('renders a systemd user unit that runs `start` with the state paths and restarts on failure', () => {
    const unit = renderSystemdUnit(spec());
    expect(unit).toContain(
      'ExecStart=/usr/bin/node --max-semi-space-size=2 "/srv/my nanoclaw/dist/cli/main.js" start\n',
    );
    expect(unit).toContain('WorkingDirectory="/srv/my nanoclaw"\n');
    expect(unit).toContain('Environment=NANOCLAW_HOME=/srv/state\n');
    expect(unit).toContain('Environment=NANOCLAW_CONFIG_DIR=/home/me/.config/nanoclaw\n');
    expect(unit).toContain('Environment=PATH=/usr/bin:/bin\n');
    expect(unit).toContain('Restart=on-failure\n');
    expect(unit).toMatch(/\[Install\]\nWantedBy=default\.target\n/);
    // Settings and secrets stay in .env, where the host reads them.
    expect(unit).not.toContain('ASSISTANT_NAME');
    expect(unit).not.toContain('sk-ant');
  });

  it('quotes systemd values and doubles % so paths are taken literally', () => {
    const odd = serviceSpec({ projectRoot: '/p/100%', home: '/h/"q"', configDir: '/c' }, '/n');
    const unit = renderSystemdUnit(odd);
    expect(unit).toContain('ExecStart=/n --max-semi-space-size=2 /p/100%%/dist/cli/main.js start');
    expect(unit).toContain('Environment="NANOCLAW_HOME=/h/\\"q\\""');
  });

  it('renders a launchd agent that runs at load, restarts after a crash and logs to files', () => {
    const plist = renderLaunchdPlist(spec());
    expect(plist).toContain('<key>Label</key><string>com.nanoclaw</string>');
    expect(plist).toMatch(
      /<key>ProgramArguments<\/key>\s*<array>\s*<string>\/usr\/bin\/node<\/string>\s*<string>--max-semi-space-size=2<\/string>\s*<string>\/srv\/my nanoclaw\/dist\/cli\/main\.js<\/string>\s*<string>start<\/string>\s*<\/array>/,
    );
    expect(plist).toContain('<key>NANOCLAW_HOME</key><string>/srv/state</string>');
    expect(plist).toContain('<key>RunAtLoad</key><true/>');
    expect(plist).toContain('<dict><key>SuccessfulExit</key><false/></dict>');
    expect(plist).toContain('<key>StandardOutPath</key><string>/srv/state/logs/nanoclaw.log</string>');
    expect(plist).not.toContain('sk-ant');
    const amp = renderLaunchdPlist(serviceSpec({ projectRoot: '/a&b<c', home: '/h', configDir: '/c' }, '/n'));
    expect(amp).toContain('<string>/a&amp;b&lt;c/dist/cli/main.js</string>');
  });
});

describe('nanoclaw service on Linux', () => {
  it('where systemctl is missing, writes the unit and says how to start it', () => {
    const { config, homeDir, projectRoot } = setup();
    const { exec, calls } = fakeExec(() => ({ code: null }));
    const { code, text } = run(['install'], { config, homeDir, platform: 'linux', exec });
    expect(code).toBe(0);
    const file = path.join(homeDir, '.config', 'systemd', 'user', 'nanoclaw.service');
    expect(fs.readFileSync(file, 'utf8')).toContain(
      `ExecStart=${process.execPath} --max-semi-space-size=2 ${projectRoot}/dist/cli/main.js start`,
    );
    expect(text).toContain('cannot run the service manager');
    expect(text).toContain(
      'systemctl --user daemon-reload && systemctl --user enable --now nanoclaw.service',
    );
    expect(calls).toEqual(['systemctl --user daemon-reload']);
  });

  it('installs, enables and starts the unit where systemd runs, and reports it active', () => {
    const { config, homeDir } = setup();
    const { exec, calls } = fakeExec((_cmd, args) =>
      args.includes('is-active') ? { stdout: 'active\n' } : {},
    );
    expect(run(['install'], { config, homeDir, platform: 'linux', exec }).code).toBe(0);
    expect(calls).toEqual([
      'systemctl --user daemon-reload',
      'systemctl --user enable --now nanoclaw.service',
    ]);
    const status = run(['status'], { config, homeDir, platform: 'linux', exec });
    expect(status.code).toBe(0);
    expect(status.text).toMatch(/installed: .*nanoclaw\.service\nactive: yes\n/);
    const json = run(['status'], { config, homeDir, platform: 'linux', exec, json: true });
    expect(JSON.parse(json.text)).toEqual({
      installed: true,
      file: path.join(homeDir, '.config/systemd/user/nanoclaw.service'),
      active: true,
    });
  });

  it('reports an installed but stopped unit, and an unreachable user manager as unknown', () => {
    const { config, homeDir } = setup();
    const stopped = fakeExec(() => ({ code: 3, stdout: 'inactive\n' }));
    run(['install'], { config, homeDir, platform: 'linux', exec: fakeExec().exec });
    const status = run(['status'], { config, homeDir, platform: 'linux', exec: stopped.exec });
    expect(status).toMatchObject({ code: 1 });
    expect(status.text).toContain('active: no\n');
    const noBus = fakeExec(() => ({ code: 1, stderr: 'Failed to connect to bus: No medium found' }));
    expect(run(['status'], { config, homeDir, platform: 'linux', exec: noBus.exec }).text).toContain(
      'active: unknown',
    );
  });

  it('uninstall stops the unit and removes the file', () => {
    const { config, homeDir } = setup();
    const { exec, calls } = fakeExec((_cmd, args) =>
      args.includes('is-active') ? { stdout: 'inactive' } : {},
    );
    run(['install'], { config, homeDir, platform: 'linux', exec });
    calls.length = 0;
    expect(run(['uninstall'], { config, homeDir, platform: 'linux', exec }).code).toBe(0);
    expect(calls).toEqual([
      'systemctl --user disable --now nanoclaw.service',
      'systemctl --user daemon-reload',
    ]);
    expect(fs.existsSync(path.join(homeDir, '.config', 'systemd', 'user', 'nanoclaw.service'))).toBe(false);
    const status = run(['status'], { config, homeDir, platform: 'linux', exec });
    expect(status.code).toBe(1);
    expect(status.text).toContain('installed: no');
  });

  it('refuses to install before the host is built', () => {
    const { config, homeDir } = setup({ built: false });
    const { code, text } = run(['install'], { config, homeDir, platform: 'linux', exec: fakeExec().exec });
    expect(code).toBe(1);
    expect(text).toContain('npm run build');
  });
});

describe('nanoclaw service on macOS', () => {
  it('writes the launch agent, reloads it, and reads its state from launchctl', () => {
    const { config, homeDir } = setup();
    const { exec, calls } = fakeExec((_cmd, args) =>
      args[0] === 'list' ? { stdout: '{\n\t"Label" = "com.nanoclaw";\n\t"PID" = 4242;\n};' } : {},
    );
    expect(run(['install'], { config, homeDir, platform: 'darwin', exec }).code).toBe(0);
    const file = path.join(homeDir, 'Library', 'LaunchAgents', 'com.nanoclaw.plist');
    expect(fs.readFileSync(file, 'utf8')).toContain('<key>Label</key><string>com.nanoclaw</string>');
    expect(calls).toEqual([`launchctl unload ${file}`, `launchctl load -w ${file}`]);
    expect(run(['status'], { config, homeDir, platform: 'darwin', exec }).text).toContain('active: yes');
    calls.length = 0;
    run(['uninstall'], { config, homeDir, platform: 'darwin', exec });
    expect(calls).toEqual([`launchctl unload -w ${file}`]);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('other platforms and arguments', () => {
  it('says what is supported', () => {
    const { config, homeDir } = setup();
    expect(run(['install'], { config, homeDir, platform: 'win32', exec: fakeExec().exec }).text).toMatch(
      /Linux \(systemd\) and macOS \(launchd\)/,
    );
    // An unknown subcommand is a usage error: test/e2e/cli.test.ts.
  });

  it('the real exec reports a command that is not installed', () => {
    expect(realExec('nanoclaw-no-such-command', []).code).toBeNull();
    expect(realExec(process.execPath, ['-e', 'process.stdout.write("hi")'])).toMatchObject({
      code: 0,
      stdout: 'hi',
    });
  });
});
