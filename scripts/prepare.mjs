// Brings a checkout to a runnable state using nothing but Node's standard library, so that the
// README's two commands work on a fresh machine: installs npm packages, compiles the host, builds
// the agent-runner on the host (for bwrap) and the agent image (for docker/podman) when missing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Runs before anything else of `npm start` and `npm test` (both import this module first).
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 22) {
  console.error(
    `NanoClaw needs Node.js 22 or newer (24 recommended); this is Node ${process.versions.node}.\n` +
      'Install a current LTS from https://nodejs.org, or with nvm: nvm install 24 && nvm use 24.',
  );
  process.exit(1);
}

export function run(cmd, args, opts = {}) {
  console.error(`> ${cmd} ${args.join(' ')}`);
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (result.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal}).`);
    process.exit(result.status ?? 1);
  }
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Installs from the lockfile when node_modules is missing or older than it. `npm install` rather
 * than `npm ci`: registries that mirror only some packages leave other platforms' optional
 * binaries out of the lockfile, which `npm ci` refuses while `npm install` keeps the lock as is.
 */
export function ensurePackages(dir = root) {
  const lock = path.join(dir, 'package-lock.json');
  const marker = path.join(dir, 'node_modules', '.package-lock.json');
  if (fs.existsSync(marker) && fs.statSync(marker).mtimeMs >= fs.statSync(lock).mtimeMs) return;
  run('npm', ['install', '--no-audit', '--no-fund', '--include=optional'], { cwd: dir });
}

/** Compiles the host into dist/ when sources are newer than the build. */
export function ensureHostBuild() {
  const built = path.join(root, 'dist', 'cli', 'main.js');
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newestMtime(path.join(root, 'src'))) return;
  run('npm', ['run', 'build']);
}

/** The agent-runner built on the host: bwrap binds it at /app. Its build copies src/contract in. */
export function ensureRunnerBuild() {
  const dir = path.join(root, 'container', 'agent-runner');
  ensurePackages(dir);
  const built = path.join(dir, 'dist', 'index.js');
  const newest = Math.max(
    newestMtime(path.join(dir, 'src')),
    newestMtime(path.join(root, 'src', 'contract')),
  );
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newest) return;
  run('npm', ['run', 'build'], { cwd: dir });
}

/** Builds the agent image through the CLI (which knows the runtime) when it is missing. */
export function ensureImage() {
  run(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'build', '--if-missing']);
}

/**
 * Podman keeps its own image store: the test suite copies the docker-built agent image into it
 * (same image id), rather than building it twice.
 */
export function ensurePodmanImage(image = 'nanoclaw-agent:latest') {
  const id = (cmd) =>
    spawnSync(cmd, ['image', 'inspect', '--format', '{{.Id}}', image], { encoding: 'utf8' })
      .stdout?.trim()
      .replace(/^sha256:/, '');
  const dockerId = id('docker');
  if (!dockerId || id('podman') === dockerId) return;
  run('bash', ['-c', `docker save ${image} | podman load -q`]);
}
