import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';

// The host idles most of the day: a 2 MB young generation keeps it about 13 MB smaller (bench row 5).
export const HOST_NODE_FLAGS = ['--max-semi-space-size=2'];

const UNIT = 'nanoclaw.service';
const LABEL = 'com.nanoclaw';
// Non-secret settings carried into the service; secrets stay in .env, read by the host.
const PASSED = `ASSISTANT_NAME ASSISTANT_HAS_OWN_NUMBER CONTAINER_RUNTIME CONTAINER_IMAGE TZ LOG_LEVEL
  MAX_CONCURRENT_CONTAINERS CONTAINER_TIMEOUT IDLE_TIMEOUT LOCAL_CHANNEL_PORT`.split(/\s+/);

type ServiceConfig = Pick<Config, 'projectRoot' | 'home' | 'configDir'>;
type ServiceSpec = ReturnType<typeof serviceSpec>;

export function serviceSpec(
  { projectRoot, home, configDir }: ServiceConfig,
  env: NodeJS.ProcessEnv,
  node: string,
) {
  return {
    // The service manager's PATH is minimal; docker/podman/bwrap must be found as they are now.
    env: {
      NANOCLAW_HOME: home,
      NANOCLAW_CONFIG_DIR: configDir,
      PATH: env.PATH || '/usr/local/bin:/usr/bin:/bin',
      ...Object.fromEntries(PASSED.filter((k) => env[k]).map((k) => [k, env[k]!])),
    },
    projectRoot,
    argv: [node, ...HOST_NODE_FLAGS, path.join(projectRoot, 'dist/cli/main.js'), 'start'],
    log: path.join(home, 'logs', 'nanoclaw.log'), // launchd's output; systemd's goes to the journal
  };
}

// systemd quoting: double quotes around anything unusual, `%` doubled (it starts a specifier).
function sq(value: string): string {
  const v = value.replace(/%/g, '%%');
  return /^[\w@%+=:,./-]+$/.test(v) ? v : `"${v.replace(/[\\"]/g, '\\$&')}"`;
}

// SIGTERM: the host lets sandboxes finish (10 s grace), disconnects, then exits 0.
export const renderSystemdUnit = (s: ServiceSpec) => `[Unit]
Description=NanoClaw personal assistant

[Service]
Type=simple
WorkingDirectory=${sq(s.projectRoot)}
${Object.entries(s.env)
  .map(([k, v]) => `Environment=${sq(`${k}=${v}`)}\n`)
  .join('')}ExecStart=${s.argv.map(sq).join(' ')}
Restart=on-failure
RestartSec=10
TimeoutStopSec=30

[Install]
WantedBy=default.target
`;

const xml = (s: string) => `<string>${s.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</string>`;

// KeepAlive restarts after a crash, not after a clean stop (exit 0 on SIGTERM).
export const renderLaunchdPlist = (s: ServiceSpec) => `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>${xml(LABEL)}
  <key>ProgramArguments</key>
  <array>${s.argv.map(xml).join('')}</array>
  <key>WorkingDirectory</key>${xml(s.projectRoot)}
  <key>EnvironmentVariables</key>
  <dict>${Object.entries(s.env)
    .map(([k, v]) => `<key>${k}</key>${xml(v)}`)
    .join('')}</dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key>
  <dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardOutPath</key>${xml(s.log)}
  <key>StandardErrorPath</key>${xml(s.log)}
</dict>
</plist>
`;

/** `missing`: the command is not installed. */
export type ExecResult = { code: number | null; stdout: string; stderr: string; missing?: boolean };
export type Exec = (cmd: string, args: string[]) => ExecResult;

export const realExec: Exec = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', missing };
};

const firstLine = (r: ExecResult) =>
  (r.stderr.trim() || r.stdout.trim()).split('\n')[0] || `exit code ${r.code}`;

export function runServiceCommand(
  sub: string,
  deps: {
    config: ServiceConfig;
    out: Writable;
    json?: boolean;
    platform?: NodeJS.Platform;
    homeDir?: string;
    env?: NodeJS.ProcessEnv;
    nodePath?: string;
    exec?: Exec;
  },
): number {
  const { out, platform = process.platform, exec = realExec, homeDir = os.homedir() } = deps;
  const say = (text: string, code: number) => (out.write(text), code);
  const linux = platform === 'linux';
  if (!linux && platform !== 'darwin')
    return say('nanoclaw service supports Linux (systemd) and macOS (launchd); use `nanoclaw start`\n', 1);
  const file = linux
    ? path.join(homeDir, '.config/systemd/user', UNIT)
    : path.join(homeDir, 'Library/LaunchAgents', `${LABEL}.plist`);
  const spec = serviceSpec(deps.config, deps.env ?? process.env, deps.nodePath ?? process.execPath);
  const logs = `Logs: ${linux ? `journalctl --user -u ${UNIT} -f` : spec.log}\n`;
  const systemctl = (...args: string[]) => exec('systemctl', ['--user', ...args]);
  const launchctl = (...args: string[]) => exec('launchctl', args);

  if (sub === 'install') {
    if (!fs.existsSync(spec.argv.at(-2)!))
      return say(`${spec.argv.at(-2)} is missing: run \`npm run build\` first\n`, 1);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.mkdirSync(path.dirname(spec.log), { recursive: true });
    fs.writeFileSync(file, linux ? renderSystemdUnit(spec) : renderLaunchdPlist(spec));
    out.write(`Wrote ${file}\n`);
    const started = 'NanoClaw runs in the background now and at every login.\n';
    if (!linux) {
      launchctl('unload', file); // a reinstall replaces a loaded agent; fails harmlessly if none
      const load = launchctl('load', '-w', file);
      return load.code
        ? say(`launchctl load failed: ${firstLine(load)}; run: launchctl load -w ${file}\n`, 1)
        : say(started, 0);
    }
    const reload = systemctl('daemon-reload');
    const enable = reload.code === 0 && systemctl('enable', '--now', UNIT);
    if (!enable || enable.code)
      return say(
        `${reload.missing ? 'systemctl is not available here' : `systemctl --user failed: ${firstLine(enable || reload)}`}; the service is not started. To start it: systemctl --user daemon-reload && systemctl --user enable --now ${UNIT}\n`,
        enable ? 1 : 0,
      );
    return say(`${started}${logs}To keep it running while logged out: loginctl enable-linger "$USER"\n`, 0);
  }
  if (sub === 'uninstall') {
    if (linux) systemctl('disable', '--now', UNIT);
    else if (fs.existsSync(file)) launchctl('unload', '-w', file);
    fs.rmSync(file, { force: true });
    if (linux) systemctl('daemon-reload');
    return say(`Removed ${file}; NanoClaw no longer starts in the background\n`, 0);
  }
  const installed = fs.existsSync(file);
  // is-active prints the state even when it exits non-zero; launchctl shows a PID only while it runs.
  // null: the service manager could not be asked.
  let active: boolean | null;
  if (linux) {
    const state = systemctl('is-active', UNIT).stdout.trim();
    active = /^((in|de)?activ(e|ating)|failed|reloading)$/.test(state) ? state === 'active' : null;
  } else active = /"PID"\s*=\s*\d+/.test(launchctl('list', LABEL).stdout);
  if (deps.json) out.write(`${JSON.stringify({ installed, file, active })}\n`);
  else
    out.write(
      `installed: ${installed ? `yes (${file})` : 'no'}\nactive: ${active === null ? 'unknown (the service manager is not reachable)' : active ? 'yes' : 'no'}\n${installed ? logs : 'Install it with `nanoclaw service install`.\n'}`,
    );
  return installed && active ? 0 : 1;
}
