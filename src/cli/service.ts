import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';

// A systemd user unit (Linux) or a launchd agent (macOS); every system call goes through `exec`.
const UNIT = 'nanoclaw.service';
const LABEL = 'com.nanoclaw';

/** Non-secret settings carried into the service; secrets stay in .env, read by the host. */
const PASSED_SETTINGS =
  `ASSISTANT_NAME ASSISTANT_HAS_OWN_NUMBER CONTAINER_RUNTIME CONTAINER_IMAGE TZ LOG_LEVEL
  MAX_CONCURRENT_CONTAINERS CONTAINER_TIMEOUT IDLE_TIMEOUT LOCAL_CHANNEL_PORT`.split(/\s+/);

type ServiceConfig = Pick<Config, 'projectRoot' | 'home' | 'configDir'>;

export function serviceSpec(config: ServiceConfig, env: NodeJS.ProcessEnv, nodePath: string) {
  const serviceEnv: Record<string, string> = {
    NANOCLAW_HOME: config.home,
    NANOCLAW_CONFIG_DIR: config.configDir,
    // The service manager's PATH is minimal; docker/podman/bwrap must be found as they are now.
    PATH: env.PATH || '/usr/local/bin:/usr/bin:/bin',
  };
  for (const key of PASSED_SETTINGS) if (env[key]) serviceEnv[key] = env[key];
  // launchd writes the host's output to logDir; systemd to the journal.
  return {
    nodePath,
    projectRoot: config.projectRoot,
    env: serviceEnv,
    logDir: path.join(config.home, 'logs'),
  };
}

type ServiceSpec = ReturnType<typeof serviceSpec>;
const command = (spec: ServiceSpec) => [
  spec.nodePath,
  path.join(spec.projectRoot, 'dist/cli/main.js'),
  'start',
];

/** systemd's quoting: double quotes around anything unusual, `%` doubled (it starts a specifier). */
function systemdQuote(value: string): string {
  const escaped = value.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

// SIGTERM: the host asks sandboxes to finish (10 s grace), disconnects, then exits 0.
export function renderSystemdUnit(spec: ServiceSpec): string {
  const env = Object.entries(spec.env).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}\n`);
  return `[Unit]
Description=NanoClaw personal assistant
Documentation=file://${path.join(spec.projectRoot, 'README.md')}

[Service]
Type=simple
WorkingDirectory=${systemdQuote(spec.projectRoot)}
${env.join('')}ExecStart=${command(spec).map(systemdQuote).join(' ')}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=default.target
`;
}

const xmlEscape = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// KeepAlive restarts after a crash, not after a clean stop (exit 0 on SIGTERM).
export function renderLaunchdPlist(spec: ServiceSpec): string {
  const str = (s: string) => `<string>${xmlEscape(s)}</string>`;
  const args = command(spec).map((a) => `    ${str(a)}\n`);
  const env = Object.entries(spec.env).map(([k, v]) => `    <key>${xmlEscape(k)}</key>${str(v)}\n`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>${str(LABEL)}
  <key>ProgramArguments</key>
  <array>
${args.join('')}  </array>
  <key>WorkingDirectory</key>${str(spec.projectRoot)}
  <key>EnvironmentVariables</key>
  <dict>
${env.join('')}  </dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key>
  <dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardOutPath</key>${str(path.join(spec.logDir, 'nanoclaw.log'))}
  <key>StandardErrorPath</key>${str(path.join(spec.logDir, 'nanoclaw.error.log'))}
</dict>
</plist>
`;
}

/** `missing`: the command could not be started (ENOENT: not installed). */
export type ExecResult = { code: number | null; stdout: string; stderr: string; missing?: boolean };
export type Exec = (cmd: string, args: string[]) => ExecResult;

export const realExec: Exec = (cmd, args) => {
  const result = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { code: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', missing };
};

const firstLine = (r: ExecResult) =>
  (r.stderr.trim() || r.stdout.trim()).split('\n')[0] || `exit code ${r.code}`;
const RUNNING = 'NanoClaw runs in the background now and at every login.\n';
const LINGER = 'To keep it running while you are logged out: loginctl enable-linger "$USER"\n';

export function runServiceCommand(
  sub: string,
  deps: {
    config: ServiceConfig;
    out: Writable;
    json?: boolean;
    platform?: NodeJS.Platform;
    homeDir?: string; // where the unit or agent file goes
    env?: NodeJS.ProcessEnv;
    nodePath?: string;
    exec?: Exec;
  },
): number {
  const { out, platform = process.platform, exec = realExec, homeDir = os.homedir() } = deps;
  const linux = platform === 'linux';
  if (!linux && platform !== 'darwin')
    return (
      out.write(
        'nanoclaw service supports Linux (systemd) and macOS (launchd); run `nanoclaw start` instead\n',
      ),
      1
    );
  const file = linux
    ? path.join(homeDir, '.config/systemd/user', UNIT)
    : path.join(homeDir, 'Library/LaunchAgents', `${LABEL}.plist`);
  const spec = serviceSpec(deps.config, deps.env ?? process.env, deps.nodePath ?? process.execPath);
  const logs = `Logs: ${linux ? `journalctl --user -u ${UNIT} -f` : path.join(spec.logDir, 'nanoclaw.log')}\n`;
  if (sub === 'install') {
    const entry = command(spec)[1]!;
    if (!fs.existsSync(entry))
      return (out.write(`${entry} is missing: run \`npm run build\` (or \`npm start\` once) first\n`), 1);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.mkdirSync(spec.logDir, { recursive: true });
    fs.writeFileSync(file, linux ? renderSystemdUnit(spec) : renderLaunchdPlist(spec));
    out.write(`Wrote ${file}\n`);
    return linux ? startSystemd(exec, out, logs) : startLaunchd(exec, out, file);
  }
  if (sub === 'uninstall') {
    if (linux) exec('systemctl', ['--user', 'disable', '--now', UNIT]);
    else if (fs.existsSync(file)) exec('launchctl', ['unload', '-w', file]);
    fs.rmSync(file, { force: true });
    if (linux) exec('systemctl', ['--user', 'daemon-reload']);
    return (out.write(`Removed ${file}; NanoClaw no longer starts in the background\n`), 0);
  }
  const installed = fs.existsSync(file);
  // undefined: no service manager to ask. is-active prints the state even when it exits non-zero; launchctl shows a PID only while it runs.
  const state = linux ? exec('systemctl', ['--user', 'is-active', UNIT]) : exec('launchctl', ['list', LABEL]);
  const known =
    !linux ||
    (!state.missing &&
      /^(active|inactive|failed|activating|deactivating|reloading)$/.test(state.stdout.trim()));
  const active = !known
    ? undefined
    : linux
      ? state.stdout.trim() === 'active'
      : /"PID"\s*=\s*\d+/.test(state.stdout);
  if (deps.json) out.write(`${JSON.stringify({ installed, file, active: active ?? null })}\n`);
  else {
    const shown =
      active === undefined ? 'unknown (the service manager is not reachable)' : active ? 'yes' : 'no';
    out.write(`installed: ${installed ? `yes (${file})` : 'no'}\nactive: ${shown}\n`);
    out.write(installed ? logs : 'Install it with `nanoclaw service install`.\n');
  }
  return installed && active ? 0 : 1;
}

function startSystemd(exec: Exec, out: Writable, logs: string): number {
  const howTo = `To start it: systemctl --user daemon-reload && systemctl --user enable --now ${UNIT}\n${LINGER}`;
  const reload = exec('systemctl', ['--user', 'daemon-reload']);
  if (reload.missing || reload.code !== 0) {
    const why = reload.missing
      ? 'systemctl is not available here'
      : `systemctl --user failed: ${firstLine(reload)}`;
    return (
      out.write(
        `${why}, so the service was not started.\n${howTo}Or run it in the foreground: nanoclaw start\n`,
      ),
      0
    );
  }
  const enable = exec('systemctl', ['--user', 'enable', '--now', UNIT]);
  if (enable.code !== 0)
    return (out.write(`systemctl --user enable --now failed: ${firstLine(enable)}\n${howTo}`), 1);
  return (out.write(`${RUNNING}${logs}${LINGER}`), 0);
}

function startLaunchd(exec: Exec, out: Writable, file: string): number {
  exec('launchctl', ['unload', file]); // a reinstall replaces a loaded agent; fails harmlessly if none
  const load = exec('launchctl', ['load', '-w', file]);
  if (load.code !== 0)
    return (
      out.write(`launchctl load failed: ${firstLine(load)}\nTo start it: launchctl load -w ${file}\n`),
      1
    );
  return (out.write(RUNNING), 0);
}
