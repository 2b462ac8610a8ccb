import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config.js';
import { FROM_AGENT } from '../ipc/to-agent.js';
import { SafeDir, UnsafeEntryError, withSafeDir } from '../safe-fs.js';
import { CONTAINER_PATHS } from '../sandbox/mount-plan.js';
import type { MountSpec } from '../sandbox/runtime.js';
import type { PlantStep } from './probe.js';

/** Sentinels where no sandbox may look, and a decoy folder the probe's links point at. */
export function createFixtures(config: Config) {
  const nonce = crypto.randomBytes(4).toString('hex');
  const mark = `audit-${nonce}`;
  const token = `nanoclaw-audit-${crypto.randomBytes(8).toString('hex')}`;
  const workDir = path.join(config.dataDir, mark);
  const decoyDir = path.join(workDir, 'decoy');
  const others = [config.groupsDir, config.ipcDir, config.sessionsDir].map((dir) => path.join(dir, mark));
  const places = {
    data: `${workDir}.txt`,
    store: path.join(config.storeDir, `${mark}.txt`),
    hostTmp: path.join(os.tmpdir(), `nanoclaw-${mark}.txt`),
    config: path.join(config.configDir, `${mark}.txt`),
    otherGroup: path.join(config.groupsDir, mark, 'audit.txt'),
    otherIpc: path.join(config.ipcDir, mark, FROM_AGENT, 'messages', 'audit.txt'),
    otherSession: path.join(config.sessionsDir, mark, '.claude', 'audit.txt'),
  };
  const sentinels = Object.entries(places).map(([id, hostPath]) => ({
    id,
    hostPath,
    token: `${token}-${id}`,
  }));
  const configDirExisted = fs.existsSync(config.configDir);
  const remove = () => {
    for (const p of [...Object.values(places), ...others, workDir])
      fs.rmSync(p, { recursive: true, force: true });
    if (!configDirExisted) fs.rmSync(config.configDir, { recursive: true, force: true });
  };
  try {
    for (const s of sentinels) {
      fs.mkdirSync(path.dirname(s.hostPath), { recursive: true });
      fs.writeFileSync(s.hostPath, `${s.token}\n`, { flag: 'wx' });
    }
    // A valid IPC message, should the host ever read one through a link.
    const payload = JSON.stringify({ type: 'message', chatJid: 'audit@decoy', text: `${token}-decoy` });
    fs.mkdirSync(path.join(decoyDir, 'sub'), { recursive: true });
    for (const name of ['payload.json', '1-decoy.json', 'sub/2-decoy.json'])
      fs.writeFileSync(path.join(decoyDir, name), payload);
  } catch (err) {
    remove();
    throw err;
  }
  return { nonce, workDir, decoyDir, decoyMarker: `${token}-decoy`, sentinels, remove };
}

/** Snapshots `dir` now; the function returned lists what changed since (ctime moves with any change). */
export function watchTree(dir: string): () => string[] {
  const snapshot = () =>
    ['.', ...fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })].map((rel) => {
      const st = fs.lstatSync(path.join(dir, rel));
      return `${rel} ${st.ino} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.ctimeMs}`;
    });
  const before = snapshot();
  return () => {
    const after = snapshot();
    return [...before.filter((e) => !after.includes(e)), ...after.filter((e) => !before.includes(e))];
  };
}

/**
 * Each plant sits where the host later writes or reads: the memory file and logs/ (ensureGroupFolder,
 * writeRunLog; the originals renamed aside first, as an attacker would), the IPC folders the watcher
 * scans, the skills the host copies, top-level entries the host hands over to the sandbox user.
 */
export function plantPlan(ctx: { nonce: string; decoyDir: string; skills: string[]; isMain: boolean }) {
  const { group: G, ipc: I, session: S, inbox: N, global, project } = CONTAINER_PATHS;
  const d = ctx.decoyDir;
  const mark = `audit-${ctx.nonce}`;
  const ok = [
    ['aside-memory', 'rename', `${G}/CLAUDE.md`, `${G}/CLAUDE.md.${mark}`],
    ['link-memory', 'symlink', `${G}/CLAUDE.md`, `${d}/created-memory.md`],
    ['aside-logs', 'rename', `${G}/logs`, `${G}/logs.${mark}`],
    ['link-logs', 'symlink', `${G}/logs`, d],
    ['link-group-entry', 'symlink', `${G}/.${mark}`, d],
    ['fifo-message', 'fifo', `${I}/messages/9-${mark}.json`],
    ['link-message-file', 'symlink', `${I}/messages/8-${mark}.json`, `${d}/payload.json`],
    ['link-message-dir', 'symlink', `${I}/messages/7-${mark}.json`, d],
    ['empty-tasks', 'rmdir', `${I}/tasks`],
    ['link-tasks', 'symlink', `${I}/tasks`, d],
    ...ctx.skills.flatMap((s) => [
      [`remove-skill-${s}`, 'rmtree', `${S}/skills/${s}`],
      [`link-skill-${s}`, 'symlink', `${S}/skills/${s}`, d],
    ]),
    ['link-session-entry', 'symlink', `${S}/.${mark}`, d],
  ];
  // Read-only: the host-to-agent inbox, shared memory, the root filesystem, main's project.
  const fail = [
    ['inbox-write', 'write', `${N}/${mark}.txt`],
    ['inbox-link', 'symlink', `${N}/${mark}.json`, d],
    ['inbox-move', 'rename', `${N}/input`, `${N}/input.${mark}`],
    ['inbox-input-write', 'write', `${N}/input/9-${mark}.json`],
    ['global-write', 'write', `${global}/${mark}.txt`],
    ['rootfs-usr', 'write', `/usr/${mark}.txt`],
    ['rootfs-etc', 'write', `/etc/${mark}.txt`],
    ...(ctx.isMain ? [['project-write', 'write', `${project}/${mark}.txt`]] : []),
  ];
  const step = (expect: 'ok' | 'fail') => (row: string[]) => {
    const [id = '', op = '', path = '', to] = row;
    return { id, op, path, to, expect };
  };
  return [...ok.map(step('ok')), ...fail.map(step('fail'))];
}

/** Runs `fn` link-safely in the host folder that holds a sandbox path, if a mount holds it. */
function inFolderOf(containerPath: string, mounts: MountSpec[], fn: (dir: SafeDir, name: string) => void) {
  const mount = mounts
    .filter((m) => !m.mask && `${containerPath}/`.startsWith(`${m.containerPath}/`))
    .sort((a, b) => b.containerPath.length - a.containerPath.length)[0];
  const rel = path.posix.relative(mount?.containerPath ?? '/', containerPath).split('/');
  const name = rel.pop();
  if (!mount || !name) return;
  try {
    const segments = [path.basename(mount.hostPath), ...rel.filter(Boolean)];
    withSafeDir(path.dirname(mount.hostPath), segments, {}, (dir) => fn(dir, name));
  } catch (err) {
    if (!(err instanceof UnsafeEntryError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Removes the plants, in reverse: only links, FIFOs and files of the kind the probe made (where
 * the host replaced a link with a real folder, that folder is the group's now); renamed originals
 * go back in place of whatever is there. `planted`: what the probe reported done ('unknown' if it
 * never reported); `drop`: files the host actions made. Returns what failed.
 */
export function removePlants(
  steps: PlantStep[],
  planted: ReadonlySet<string> | 'unknown',
  mounts: MountSpec[],
  drop: string[],
): string[] {
  const problems: string[] = [];
  for (const { id, op, path: at, to = '' } of [...steps].reverse()) {
    try {
      inFolderOf(at, mounts, (dir, name) => {
        const st = dir.lstat(name);
        if (op === 'rename') {
          if (st?.isDirectory())
            dir.withSubdir(name, {}, (made) => drop.forEach((entry) => made.remove(entry)));
          if (!dir.lstat(path.posix.basename(to))) return;
          dir.remove(name);
          dir.moveTo(path.posix.basename(to), dir, name);
        } else if (planted === 'unknown' || planted.has(id)) {
          const made: Record<string, boolean | undefined> = {
            symlink: st?.isSymbolicLink(),
            fifo: st?.isFIFO(),
            write: st?.isFile(),
          };
          if (made[op]) dir.remove(name);
        }
      });
    } catch (err) {
      problems.push(`${at}: ${(err as Error).message}`);
    }
  }
  return problems;
}
