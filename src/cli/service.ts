import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from '../config.js';

/**
 * `nanoclaw service install|uninstall|status`: keeps NanoClaw running in the background as a
 * systemd user unit (Linux) or a launchd agent (macOS). Rendering the unit is pure; every system
 * call goes through `exec`, so tests can run it without systemd or launchd.
 */

export const SYSTEMD_UNIT_NAME = 'nanoclaw.service';
export const LAUNCHD_LABEL = 'com.nanoclaw';

/** Non-secret settings worth carrying into the service; secrets stay in .env, read by the host. */
const PASSED_SETTINGS = [
  'ASSISTANT_NAME',
  'ASSISTANT_HAS_OWN_NUMBER',
  'CONTAINER_RUNTIME',
  'CONTAINER_IMAGE',
  'MAX_CONCURRENT_CONTAINERS',
  'CONTAINER_TIMEOUT',
  'IDLE_TIMEOUT',
  'LOCAL_CHANNEL_PORT',
  'TZ',
  'LOG_LEVEL',
];

export interface ServiceSpec {
  /** Absolute path of the Node binary that runs the host. */
  nodePath: string;
  projectRoot: string;
  /** Environment of the service: NANOCLAW_HOME, NANOCLAW_CONFIG_DIR, PATH and chosen settings. */
  env: Record<string, string>;
  /** launchd writes stdout/stderr to files; systemd uses the journal. */
  logDir: string;
}

export function serviceSpec(
  config: Pick<Config, 'projectRoot' | 'home' | 'configDir'>,
  env: NodeJS.ProcessEnv,
  nodePath: string,
): ServiceSpec {
  const serviceEnv: Record<string, string> = {
    NANOCLAW_HOME: config.home,
    NANOCLAW_CONFIG_DIR: config.configDir,
    // The service manager's PATH is minimal; docker/podman/bwrap must be found as they are now.
    PATH: env.PATH || '/usr/local/bin:/usr/bin:/bin',
  };
  for (const key of PASSED_SETTINGS) {
    const value = env[key];
    if (value) serviceEnv[key] = value;
  }
  return {
    nodePath,
    projectRoot: config.projectRoot,
    env: serviceEnv,
    logDir: path.join(config.home, 'logs'),
  };
}

const entryPoint = (spec: ServiceSpec) => path.join(spec.projectRoot, 'dist', 'cli', 'main.js');

/** systemd's quoting: double quotes around anything unusual, `%` doubled (it starts a specifier). */
function systemdQuote(value: string): string {
  const escaped = value.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderSystemdUnit(spec: ServiceSpec): string {
  const env = Object.entries(spec.env).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`);
  const exec = [spec.nodePath, entryPoint(spec), 'start'].map(systemdQuote).join(' ');
  return [
    '[Unit]',
    'Description=NanoClaw personal assistant',
    'Documentation=file://' + path.join(spec.projectRoot, 'README.md'),
    '',
    '[Service]',
    'Type=simple',
    `WorkingDirectory=${systemdQuote(spec.projectRoot)}`,
    ...env,
    `ExecStart=${exec}`,
    'Restart=on-failure',
    'RestartSec=10',
    // SIGTERM: the host asks sandboxes to finish (10 s grace), disconnects, then exits 0.
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderLaunchdPlist(spec: ServiceSpec): string {
  const str = (s: string) => `<string>${xmlEscape(s)}</string>`;
  const args = [spec.nodePath, entryPoint(spec), 'start'].map((a) => `    ${str(a)}`);
  const env = Object.entries(spec.env).map(([k, v]) => `    <key>${xmlEscape(k)}</key>${str(v)}`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${str(LAUNCHD_LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args,
    '  </array>',
    `  <key>WorkingDirectory</key>${str(spec.projectRoot)}`,
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    ...env,
    '  </dict>',
    '  <key>RunAtLoad</key><true/>',
    // Restart after a crash, not after a clean stop (exit 0 on SIGTERM).
    '  <key>KeepAlive</key>',
    '  <dict><key>SuccessfulExit</key><false/></dict>',
    `  <key>StandardOutPath</key>${str(path.join(spec.logDir, 'nanoclaw.log'))}`,
    `  <key>StandardErrorPath</key>${str(path.join(spec.logDir, 'nanoclaw.error.log'))}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started (ENOENT: not installed). */
  missing?: boolean;
}

export type Exec = (cmd: string, args: string[]) => ExecResult;

export const realExec: Exec = (cmd, args) => {
  const result = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { code: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', missing };
};

export interface ServiceDeps {
  config: Pick<Config, 'projectRoot' | 'home' | 'configDir'>;
  out: Writable;
  platform?: NodeJS.Platform;
  /** The user's home directory (where the unit or agent file goes). */
  homeDir?: string;
  env?: NodeJS.ProcessEnv;
  nodePath?: string;
  exec?: Exec;
}

export interface ServiceStatus {
  installed: boolean;
  /** undefined when the service manager could not be asked. */
  active: boolean | undefined;
  file: string;
}

export function serviceFile(platform: NodeJS.Platform, homeDir: string): string | undefined {
  if (platform === 'linux') return path.join(homeDir, '.config', 'systemd', 'user', SYSTEMD_UNIT_NAME);
  if (platform === 'darwin') return path.join(homeDir, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
  return undefined;
}

const firstLine = (r: ExecResult) =>
  (r.stderr.trim() || r.stdout.trim()).split('\n')[0] || `exit code ${r.code}`;

export function runServiceCommand(args: string[], deps: ServiceDeps): number {
  const platform = deps.platform ?? process.platform;
  const homeDir = deps.homeDir ?? os.homedir();
  const exec = deps.exec ?? realExec;
  const { out } = deps;
  const file = serviceFile(platform, homeDir);
  if (!file) {
    out.write(
      'nanoclaw service supports Linux (systemd) and macOS (launchd); run `nanoclaw start` instead\n',
    );
    return 1;
  }
  const sub = args[0];
  if (sub !== 'install' && sub !== 'uninstall' && sub !== 'status') {
    out.write('usage: nanoclaw service install|uninstall|status\n');
    return 2;
  }
  const spec = serviceSpec(deps.config, deps.env ?? process.env, deps.nodePath ?? process.execPath);
  const target = { platform, file, exec, out, spec };
  switch (sub) {
    case 'install':
      return install(target);
    case 'uninstall':
      return uninstall(target);
    case 'status':
      return status(target);
  }
}

interface Target {
  platform: NodeJS.Platform;
  file: string;
  exec: Exec;
  out: Writable;
  spec: ServiceSpec;
}

function install({ platform, file, exec, out, spec }: Target): number {
  if (!fs.existsSync(entryPoint(spec))) {
    out.write(`${entryPoint(spec)} is missing: run \`npm run build\` (or \`npm start\` once) first\n`);
    return 1;
  }
  const linux = platform === 'linux';
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.mkdirSync(spec.logDir, { recursive: true });
  fs.writeFileSync(file, linux ? renderSystemdUnit(spec) : renderLaunchdPlist(spec));
  out.write(`Wrote ${file}\n`);
  return linux ? startSystemd(exec, out) : startLaunchd(exec, out, file);
}

function uninstall({ platform, file, exec, out }: Target): number {
  const linux = platform === 'linux';
  if (linux) exec('systemctl', ['--user', 'disable', '--now', SYSTEMD_UNIT_NAME]);
  else if (fs.existsSync(file)) exec('launchctl', ['unload', '-w', file]);
  fs.rmSync(file, { force: true });
  if (linux) exec('systemctl', ['--user', 'daemon-reload']);
  out.write(`Removed ${file}; NanoClaw no longer starts in the background\n`);
  return 0;
}

/** Exit code 0 only when installed and running, so scripts can test it. */
function status({ platform, file, exec, out, spec }: Target): number {
  const state = serviceStatus(platform, file, exec);
  const active =
    state.active === undefined
      ? 'unknown (the service manager is not reachable)'
      : state.active
        ? 'yes'
        : 'no';
  out.write(`installed: ${state.installed ? `yes (${file})` : 'no'}\nactive: ${active}\n`);
  if (!state.installed) out.write('Install it with `nanoclaw service install`.\n');
  else if (platform === 'linux') out.write(`Logs: journalctl --user -u ${SYSTEMD_UNIT_NAME} -f\n`);
  else out.write(`Logs: ${path.join(spec.logDir, 'nanoclaw.log')}\n`);
  return state.installed && state.active ? 0 : 1;
}

function startSystemd(exec: Exec, out: Writable): number {
  const howTo =
    `To start it: systemctl --user daemon-reload && systemctl --user enable --now ${SYSTEMD_UNIT_NAME}\n` +
    'To keep it running while you are logged out: loginctl enable-linger "$USER"\n';
  const reload = exec('systemctl', ['--user', 'daemon-reload']);
  if (reload.missing || reload.code !== 0) {
    const why = reload.missing
      ? 'systemctl is not available here'
      : `systemctl --user failed: ${firstLine(reload)}`;
    out.write(
      `${why}, so the service was not started.\n${howTo}Or run it in the foreground: nanoclaw start\n`,
    );
    return 0;
  }
  const enable = exec('systemctl', ['--user', 'enable', '--now', SYSTEMD_UNIT_NAME]);
  if (enable.code !== 0) {
    out.write(`systemctl --user enable --now failed: ${firstLine(enable)}\n${howTo}`);
    return 1;
  }
  out.write(
    `NanoClaw runs in the background now and at every login.\nLogs: journalctl --user -u ${SYSTEMD_UNIT_NAME} -f\n` +
      'To keep it running while you are logged out: loginctl enable-linger "$USER"\n',
  );
  return 0;
}

function startLaunchd(exec: Exec, out: Writable, file: string): number {
  // A reinstall replaces a loaded agent: unload first (fails harmlessly when not loaded).
  const unload = exec('launchctl', ['unload', file]);
  if (unload.missing) {
    out.write(
      `launchctl is not available here, so the agent was not loaded.\nTo start it: launchctl load -w ${file}\n`,
    );
    return 0;
  }
  const load = exec('launchctl', ['load', '-w', file]);
  if (load.code !== 0) {
    out.write(`launchctl load failed: ${firstLine(load)}\nTo start it: launchctl load -w ${file}\n`);
    return 1;
  }
  out.write('NanoClaw runs in the background now and at every login.\n');
  return 0;
}

export function serviceStatus(platform: NodeJS.Platform, file: string, exec: Exec): ServiceStatus {
  const installed = fs.existsSync(file);
  if (platform === 'linux') {
    const r = exec('systemctl', ['--user', 'is-active', SYSTEMD_UNIT_NAME]);
    const state = r.stdout.trim();
    // is-active prints the state even when it exits non-zero; no state = no user manager to ask.
    const known = !r.missing && /^(active|inactive|failed|activating|deactivating|reloading)$/.test(state);
    return { installed, active: known ? state === 'active' : undefined, file };
  }
  const r = exec('launchctl', ['list', LAUNCHD_LABEL]);
  if (r.missing) return { installed, active: undefined, file };
  // `launchctl list <label>` exits non-zero when not loaded, and shows "PID" = n while running.
  return { installed, active: r.code === 0 && /"PID"\s*=\s*\d+/.test(r.stdout), file };
}
