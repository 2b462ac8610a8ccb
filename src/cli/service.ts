import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';

// A 2 MB young generation keeps the idle host about 13 MB smaller (bench row 5).
export const HOST_NODE_FLAGS = ['--max-semi-space-size=2'];

const UNIT = 'nanoclaw.service';
const LABEL = 'com.nanoclaw';
type Spec = ReturnType<typeof serviceSpec>;
type Paths = Pick<Config, 'projectRoot' | 'home' | 'configDir'>;

// Settings come from .env; PATH finds docker/podman/bwrap as now.
export const serviceSpec = (c: Paths, node = process.execPath) => ({
  env: { NANOCLAW_HOME: c.home, NANOCLAW_CONFIG_DIR: c.configDir, PATH: process.env.PATH || '/usr/bin:/bin' },
  projectRoot: c.projectRoot,
  argv: [node, ...HOST_NODE_FLAGS, path.join(c.projectRoot, 'dist/cli/main.js'), 'start'],
  log: path.join(c.home, 'logs', 'nanoclaw.log'), // launchd only
});

// systemd quoting: `%` starts a specifier.
const sq = (value: string) => {
  const v = value.replace(/%/g, '%%');
  return /^[\w@%+=:,./-]+$/.test(v) ? v : `"${v.replace(/[\\"]/g, '\\$&')}"`;
};

export const renderSystemdUnit = (s: Spec) => `[Unit]
Description=NanoClaw personal assistant

[Service]
WorkingDirectory=${sq(s.projectRoot)}
${Object.entries(s.env)
  .map(([k, v]) => `Environment=${sq(`${k}=${v}`)}\n`)
  .join('')}ExecStart=${s.argv.map(sq).join(' ')}
Restart=on-failure
RestartSec=10

[Install]
WantedBy=default.target
`;

const xml = (s: string) => `<string>${s.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</string>`;

export const renderLaunchdPlist = (s: Spec) => `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>Label</key>${xml(LABEL)}
<key>ProgramArguments</key><array>${s.argv.map(xml).join('')}</array>
<key>WorkingDirectory</key>${xml(s.projectRoot)}
<key>EnvironmentVariables</key><dict>${Object.entries(s.env)
  .map(([k, v]) => `<key>${k}</key>${xml(v)}`)
  .join('')}</dict>
<key>RunAtLoad</key><true/>
<key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
<key>StandardOutPath</key>${xml(s.log)}
<key>StandardErrorPath</key>${xml(s.log)}
</dict></plist>
`;

export const realExec = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
};

export function runServiceCommand(
  sub: string,
  deps: {
    config: Paths;
    out: Writable;
    json?: boolean;
    platform?: NodeJS.Platform;
    homeDir?: string;
    exec?: typeof realExec;
  },
): number {
  const { out, platform = process.platform, exec = realExec, homeDir = os.homedir() } = deps;
  const say = (text: string, code: number) => (out.write(`${text}\n`), code);
  const linux = platform === 'linux';
  if (!linux && platform !== 'darwin')
    return say('nanoclaw service supports Linux (systemd) and macOS (launchd)', 1);
  const file = linux
    ? `${homeDir}/.config/systemd/user/${UNIT}`
    : `${homeDir}/Library/LaunchAgents/${LABEL}.plist`;
  const spec = serviceSpec(deps.config);
  const ctl = (...args: string[]) =>
    linux ? exec('systemctl', ['--user', ...args]) : exec('launchctl', args);
  if (sub === 'install') {
    const entry = spec.argv.at(-2)!;
    if (!fs.existsSync(entry)) return say(`${entry} is missing: run \`npm run build\` first`, 1);
    for (const f of [file, spec.log]) fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(file, linux ? renderSystemdUnit(spec) : renderLaunchdPlist(spec));
    if (!linux) ctl('unload', file); // a reinstall replaces a loaded agent
    let r = ctl(...(linux ? ['daemon-reload'] : ['load', '-w', file]));
    if (linux && r.code === 0) r = ctl('enable', '--now', UNIT);
    if (r.code === 0) return say(`Installed ${file}: NanoClaw runs now and at every login.`, 0);
    const manual = linux
      ? `systemctl --user daemon-reload && systemctl --user enable --now ${UNIT}`
      : `launchctl load -w ${file}`;
    const why = r.code === null ? 'cannot run the service manager' : r.stderr.trim();
    return say(`Wrote ${file}, but ${why}; to start it: ${manual}`, r.code === null ? 0 : 1);
  }
  if (sub === 'uninstall') {
    if (linux || fs.existsSync(file)) ctl(...(linux ? ['disable', '--now', UNIT] : ['unload', '-w', file]));
    fs.rmSync(file, { force: true });
    if (linux) ctl('daemon-reload');
    return say(`Removed ${file}`, 0);
  }
  const installed = fs.existsSync(file);
  // is-active prints the state even when it fails; launchctl shows a PID while it runs.
  const state = ctl(...(linux ? ['is-active', UNIT] : ['list', LABEL])).stdout.trim();
  const active = linux ? (state ? state === 'active' : null) : /"PID"\s*=\s*\d+/.test(state);
  const code = installed && active ? 0 : 1;
  if (deps.json) return say(JSON.stringify({ installed, file, active }), code);
  return say(
    `installed: ${installed ? file : 'no'}\nactive: ${active === null ? 'unknown' : active ? 'yes' : 'no'}`,
    code,
  );
}
