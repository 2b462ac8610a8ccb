import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config.js';
import { FROM_AGENT } from '../ipc/to-agent.js';

/**
 * What the host lays out before the probe runs: sentinel files in places no sandbox may see, a
 * scratch second group, and a decoy folder that the probe's links point at. All of it is the
 * audit's own, under names carrying the run's nonce, and is removed afterwards. Sentinels are
 * world-readable on purpose: only the mount plan may hide them, never file permissions.
 */

export type SentinelPlace =
  'data' | 'store' | 'hostTmp' | 'config' | 'otherGroup' | 'otherIpc' | 'otherSession';

export interface Sentinel {
  id: SentinelPlace;
  hostPath: string;
  token: string;
}

export interface Fixtures {
  nonce: string;
  /** data/audit-<nonce>/: the audit's working folder (proxy sockets, decoy, media), host-only. */
  workDir: string;
  decoyDir: string;
  /** A valid IPC message, should the host ever read it through a link. */
  decoyMarker: string;
  /** A host-private file for publishMedia. */
  mediaFile: string;
  sentinels: Sentinel[];
  otherFolder: string;
  remove(): void;
}

export function createFixtures(config: Config): Fixtures {
  const nonce = crypto.randomBytes(4).toString('hex');
  const tokenBase = `nanoclaw-audit-${crypto.randomBytes(8).toString('hex')}`;
  const otherFolder = `audit-${nonce}`;
  const workDir = path.join(config.dataDir, `audit-${nonce}`);
  const created: string[] = [];
  const configDirExisted = fs.existsSync(config.configDir);

  const places: Record<SentinelPlace, string> = {
    data: path.join(config.dataDir, `audit-${nonce}.txt`),
    store: path.join(config.storeDir, `audit-${nonce}.txt`),
    hostTmp: path.join(os.tmpdir(), `nanoclaw-audit-${nonce}.txt`),
    config: path.join(config.configDir, `audit-${nonce}.txt`),
    otherGroup: path.join(config.groupsDir, otherFolder, 'audit.txt'),
    otherIpc: path.join(config.ipcDir, otherFolder, FROM_AGENT, 'messages', 'audit.txt'),
    otherSession: path.join(config.sessionsDir, otherFolder, '.claude', 'audit.txt'),
  };
  const sentinels = (Object.entries(places) as [SentinelPlace, string][]).map(([id, hostPath]) => ({
    id,
    hostPath,
    token: `${tokenBase}-${id}`,
  }));
  const remove = () => {
    for (const target of created.reverse()) fs.rmSync(target, { recursive: true, force: true });
    if (!configDirExisted) fs.rmSync(config.configDir, { recursive: true, force: true });
  };
  try {
    for (const s of sentinels) {
      fs.mkdirSync(path.dirname(s.hostPath), { recursive: true, mode: 0o755 });
      fs.writeFileSync(s.hostPath, `${s.token}\n`, { mode: 0o644, flag: 'wx' });
      created.push(s.hostPath);
    }
    for (const root of [config.groupsDir, config.ipcDir, config.sessionsDir])
      created.push(path.join(root, otherFolder));

    fs.mkdirSync(workDir, { mode: 0o755 });
    created.push(workDir);
    const decoyDir = path.join(workDir, 'decoy');
    const decoyMarker = `${tokenBase}-decoy`;
    const payload = JSON.stringify({ type: 'message', chatJid: 'audit@decoy', text: decoyMarker });
    fs.mkdirSync(path.join(decoyDir, 'sub'), { recursive: true, mode: 0o755 });
    for (const name of ['payload.json', '1-decoy.json', 'sub/2-decoy.json'])
      fs.writeFileSync(path.join(decoyDir, name), `${payload}\n`, { mode: 0o644 });
    fs.writeFileSync(path.join(decoyDir, 'keep.txt'), 'a host file the audit watches\n', { mode: 0o644 });
    const mediaDir = path.join(workDir, 'media');
    fs.mkdirSync(mediaDir, { mode: 0o700 });
    const mediaFile = path.join(mediaDir, `audit-${nonce}.txt`);
    fs.writeFileSync(mediaFile, 'an attachment the audit publishes\n');
    return { nonce, workDir, decoyDir, decoyMarker, mediaFile, sentinels, otherFolder, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** Every entry below `dir` with what a write, chown, chmod or move through a link would change. */
export function snapshotTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string) => {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'link' : 'other';
    const content = st.isFile()
      ? crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex').slice(0, 16)
      : st.isSymbolicLink()
        ? fs.readlinkSync(full)
        : '';
    // ctime moves with any change to the inode (content, owner, mode, links), reads leave it.
    out.set(rel || '.', `${kind} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.ctimeMs} ${content}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(full).sort()) visit(path.join(rel, name));
  };
  visit('');
  return out;
}

/** Human-readable differences between two snapshots; empty when nothing changed. */
export function diffTrees(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [entry, was] of before) {
    const now = after.get(entry);
    if (now === undefined) changes.push(`${entry} was removed`);
    else if (now !== was) changes.push(`${entry} changed (${was} -> ${now})`);
  }
  for (const entry of after.keys()) if (!before.has(entry)) changes.push(`${entry} was created`);
  return changes;
}
