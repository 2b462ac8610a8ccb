import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { Config } from '../../src/config.js';
import { buildMountPlan, prepareGroupDirs } from '../../src/sandbox/mount-plan.js';
import {
  INSTANCE_LABEL,
  sandboxUser,
  type SandboxRuntime,
  type SandboxSpec,
} from '../../src/sandbox/runtime.js';
import type { RegisteredGroup } from '../../src/types.js';
import { makeTempDir, testConfig, testGroup } from '../unit/sandbox-helpers.js';

export const TEST_IMAGE = 'nanoclaw-test-busybox:latest';

/**
 * A tiny image from Debian's busybox-static (no registry needed): /bin/busybox, its applets as
 * symlinks, and a passwd naming uid 1000 "node" like the agent image does (the runtime binds its
 * own over it, for whatever uid the sandbox runs as).
 */
export function ensureBusyboxImage(): string {
  if (spawnSync('docker', ['image', 'inspect', TEST_IMAGE], { stdio: 'ignore' }).status === 0)
    return TEST_IMAGE;
  const busybox = '/bin/busybox';
  if (!fs.existsSync(busybox)) throw new Error('busybox is missing: apt-get install busybox-static');
  const rootfs = makeTempDir('nanoclaw-busybox-');
  try {
    for (const dir of ['bin', 'etc', 'home/node', 'tmp', 'workspace'])
      fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
    fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
    fs.copyFileSync(busybox, path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n');
    for (const applet of applets.filter((a) => a && a !== 'busybox'))
      fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
    fs.writeFileSync(
      path.join(rootfs, 'etc/passwd'),
      'root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n',
    );
    fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
    const tar = spawnSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
    if (tar.status !== 0) throw new Error(`tar failed: ${String(tar.stderr)}`);
    const imported = spawnSync('docker', ['import', '--change', 'ENV PATH=/bin', '-', TEST_IMAGE], {
      input: tar.stdout,
      encoding: 'utf8',
    });
    if (imported.status !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
    return TEST_IMAGE;
  } finally {
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from spawn to the first stdout byte. */
  firstOutputMs: number | null;
}

export function collect(proc: ChildProcess, spawnedAt = Date.now()): Promise<Finished> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let firstOutputMs: number | null = null;
    proc.stdout?.on('data', (d: Buffer) => {
      firstOutputMs ??= Date.now() - spawnedAt;
      stdout += d.toString();
    });
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, firstOutputMs }));
  });
}

export const MARKERS = {
  env: 'ENV_FILE_MARKER_7f3a',
  store: 'STORE_MARKER_91bc',
  otherGroup: 'OTHER_GROUP_MARKER_55de',
  otherIpc: 'OTHER_IPC_MARKER_c0ff',
};

/** A NANOCLAW_HOME (= project root) holding secrets a sandbox must not see. */
export function makeStateHome(instanceId = 'e2e'): Config {
  const home = makeTempDir('nanoclaw-e2e-');
  const config = testConfig(home, { instanceId });
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(home, rel)), { recursive: true });
    fs.writeFileSync(path.join(home, rel), text);
  };
  write('.env', `ANTHROPIC_API_KEY=${MARKERS.env}\n`);
  write('store/messages.db', MARKERS.store);
  write('groups/other/notes.txt', MARKERS.otherGroup);
  write('data/ipc/other/messages/m.json', MARKERS.otherIpc);
  write('groups/global/CLAUDE.md', 'global memory');
  return config;
}

/** Prepares the group's dirs and returns a spec built from the real mount plan. */
export function specFor(
  config: Config,
  group: RegisteredGroup,
  image: string,
  command: string[],
  name = `nanoclaw-${group.folder}-${Date.now()}`,
): SandboxSpec {
  const user = sandboxUser(config);
  prepareGroupDirs(group, config, user);
  return {
    name,
    image,
    mounts: buildMountPlan(group, config, []),
    env: { TZ: 'UTC', HOME: '/home/node', PROBE: 'yes' },
    workdir: '/workspace/group',
    labels: { [INSTANCE_LABEL]: config.instanceId },
    user,
    command,
  };
}

/** Reports, as key=value lines, what a sandbox can see and do. POSIX sh: busybox and dash alike. */
export const ISOLATION_PROBE = `
echo "uid=$(id -u)"
echo "user=$(id -un)"
echo "capeff=$(grep CapEff /proc/self/status | tr -d ' \\t' | cut -d: -f2)"
echo "cwd=$(pwd)"
echo "env_probe=$PROBE"
echo "hello=$(cat /workspace/group/hello.txt)"
echo from-sandbox > /workspace/group/from-sandbox.txt && echo group_write=ok
echo "global=$(cat /workspace/global/CLAUDE.md)"
echo x > /workspace/global/probe 2>/dev/null && echo global_write=yes || echo global_write=no
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"
touch /rootfs-probe 2>/dev/null && echo rootfs=writable || echo rootfs=readonly
touch /home/node/.claude.json && echo home_write=ok
touch /tmp/probe && echo tmp_write=ok
echo "workspace=$(ls /workspace | tr '\\n' ',')"
test -e /workspace/project && echo project=visible || echo project=absent
test -e /var/run/docker.sock && echo docker_sock=visible || echo docker_sock=absent
echo "leaks=$(grep -rlsE '${Object.values(MARKERS).join('|')}' /workspace /home /tmp /run 2>/dev/null | tr '\\n' ',')"
echo "project_groups=$(ls /workspace/project/groups 2>/dev/null | tr '\\n' ',')"
echo "project_store=$(ls -A /workspace/project/store 2>/dev/null | tr '\\n' ',')"
`;

export function parseProbe(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/**
 * Runs the isolation probe in a real sandbox of `runtime` with the real mount plan, for a non-main
 * group and for main, and checks every property the sandbox contract promises.
 */
export async function expectIsolated(runtime: SandboxRuntime, image: string, isMain: boolean): Promise<void> {
  const config = makeStateHome();
  try {
    const folder = isMain ? 'main' : 'family';
    const group = testGroup(folder, { isMain });
    const spec = specFor(config, group, image, ['sh', '-c', ISOLATION_PROBE]);
    fs.writeFileSync(path.join(config.groupsDir, folder, 'hello.txt'), 'hi from host');
    const done = await collect(runtime.spawn(spec));
    expect(done.code, done.stderr).toBe(0);
    const probe = parseProbe(done.stdout);
    const { uid } = sandboxUser(config);
    expect(probe.uid).toBe(String(uid));
    expect(probe.user).toBe('node'); // the sandbox uid has an account inside, whatever its number
    expect(probe.capeff).toBe('0000000000000000');
    expect(probe.cwd).toBe('/workspace/group');
    expect(probe.env_probe).toBe('yes');
    expect(probe.hello).toBe('hi from host');
    expect(probe.group_write).toBe('ok');
    expect(fs.statSync(path.join(config.groupsDir, folder, 'from-sandbox.txt')).uid).toBe(uid);
    expect(probe.global).toBe('global memory');
    expect(probe.global_write).toBe('no');
    expect(probe.ifaces).toBe('lo,');
    expect(probe.rootfs).toBe('readonly');
    expect(probe.home_write).toBe('ok');
    expect(probe.tmp_write).toBe('ok');
    expect(probe.docker_sock).toBe('absent');
    if (isMain) {
      expect(probe.workspace).toBe('global,group,inbox,ipc,project,');
      expect(probe.project).toBe('visible');
      // Main is the admin: other groups' folders are readable, state and secrets are not.
      expect(probe.project_groups).toBe('global,main,other,');
      expect(probe.project_store).toBe('');
      expect(probe.leaks).toBe('/workspace/project/groups/other/notes.txt,');
    } else {
      expect(probe.workspace).toBe('global,group,inbox,ipc,');
      expect(probe.project).toBe('absent');
      expect(probe.leaks).toBe('');
    }
  } finally {
    fs.rmSync(config.home, { recursive: true, force: true });
  }
}
