import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SANDBOX_UID, type Config } from '../config.js';
import { DEFAULT_LIMITS, type CgroupSupport } from '../sandbox/runtimes/cgroup.js';
import type { Check } from './doctor.js';

/** Doctor's checks of who sandboxes run as and what bounds them. */

type StatFn = (p: string) => fs.Stats | undefined;
const statOrUndefined: StatFn = (p) => fs.statSync(p, { throwIfNoEntry: false });

/** Which permission bits apply to `who` for a file. */
function bitsFor(stat: fs.Stats, who: { uid: number; gid: number }): number {
  if (who.uid === 0) return 7;
  if (stat.uid === who.uid) return (stat.mode >> 6) & 7;
  if (stat.gid === who.gid) return (stat.mode >> 3) & 7;
  return stat.mode & 7;
}

/**
 * The directories on the way to `target` that `who` cannot pass (no search permission), and the
 * target itself when it cannot be read. A path that does not exist yet is checked up to its
 * nearest existing ancestor (that is where it will be created).
 */
export function unreachableDirs(
  target: string,
  who: { uid: number; gid: number },
  stat: StatFn = statOrUndefined,
): string[] {
  const blocked: string[] = [];
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    const st = stat(dir);
    if (!st) break;
    const need = i === parts.length ? 5 : 1; // r-x on the target, --x on the way
    if ((bitsFor(st, who) & need) !== need) blocked.push(dir);
  }
  return blocked;
}

/** bwrap sandboxes of a root host run as the sandbox uid and resolve their mounts with it. */
export function permissionsCheck(config: Config): Check {
  const uid = config.sandboxUid;
  const who = { uid, gid: uid };
  // The project (agent-runner at /app, main's view), the state, and Node itself are bound in.
  const nodeBin = path.dirname(fs.realpathSync(process.execPath));
  const targets = [...new Set([config.projectRoot, config.home, nodeBin])];
  const blocked = [...new Set(targets.flatMap((t) => unreachableDirs(t, who)))];
  return {
    name: 'permissions',
    ok: blocked.length === 0,
    detail:
      blocked.length === 0
        ? `uid ${uid} (the bwrap sandbox user) can reach ${targets.join(', ')}`
        : `uid ${uid} (the bwrap sandbox user) cannot pass ${blocked.join(', ')}`,
    fix: `\`chmod o+rx ${blocked.join(' ')}\` — or keep the project and NANOCLAW_HOME outside /root (e.g. /srv/nanoclaw), or use Docker`,
  };
}

/** Name of the passwd or group entry with this id, or null when there is none. */
export type AccountLookup = (db: 'passwd' | 'group', id: number) => string | null;

/** getent sees every account source (files, LDAP, sssd); /etc alone is the fallback without it. */
export const systemAccountLookup: AccountLookup = (db, id) => {
  const result = spawnSync('getent', [db, String(id)], { encoding: 'utf8', timeout: 10_000 });
  if (result.status === 0) return result.stdout.split(':')[0] || `#${id}`;
  if (result.status === 2) return null; // getent: key not found
  let text = '';
  try {
    text = fs.readFileSync(`/etc/${db}`, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[2] === String(id)) return fields[0] ?? `#${id}`;
  }
  return null;
};

/** The first id from the default on that is neither a user's nor a group's, to suggest. */
function freeId(lookup: AccountLookup): number | null {
  for (let id = DEFAULT_SANDBOX_UID; id < DEFAULT_SANDBOX_UID + 184; id++)
    if (lookup('passwd', id) === null && lookup('group', id) === null) return id;
  return null;
}

/**
 * A root host's sandboxes run as config.sandboxUid (gid the same): if a person's account had it,
 * every file, process and socket of a sandbox would be theirs, and theirs the sandbox's.
 */
export function sandboxUidCheck(
  config: Config,
  isRoot: boolean,
  lookup: AccountLookup = systemAccountLookup,
): Check {
  const uid = config.sandboxUid;
  if (!isRoot)
    return {
      name: 'sandbox user',
      ok: true,
      detail: `sandboxes run as you (uid ${process.getuid?.() ?? '?'}); SANDBOX_UID applies only to a root host`,
    };
  const user = lookup('passwd', uid);
  const group = lookup('group', uid);
  const owners = [
    ...(user !== null ? [`user "${user}"`] : []),
    ...(group !== null ? [`group "${group}"`] : []),
  ];
  if (owners.length === 0)
    return {
      name: 'sandbox user',
      ok: true,
      detail: `sandboxes run as uid/gid ${uid}, which no account has`,
    };
  const free = freeId(lookup);
  return {
    name: 'sandbox user',
    ok: false,
    detail: `sandboxes run as uid/gid ${uid}, which belongs to ${owners.join(' and ')} on this host`,
    fix:
      `set SANDBOX_UID in ${config.envFile} to a uid no user or group has` +
      (free !== null ? ` (e.g. SANDBOX_UID=${free}; \`getent passwd ${free}\` prints nothing)` : '') +
      ', then restart nanoclaw',
  };
}

const GIB = 1024 ** 3;

/** Whether bwrap sandboxes get the pids and memory caps docker gives its containers. */
export function sandboxLimitsCheck(support: CgroupSupport, isRoot: boolean): Check {
  const wanted = `pids ≤ ${DEFAULT_LIMITS.pidsMax} and memory ≤ ${DEFAULT_LIMITS.memoryBytes / GIB} GiB`;
  if (support.missing.length === 0)
    return {
      name: 'sandbox limits',
      ok: true,
      detail: `${wanted} per bwrap sandbox (cgroup ${support.version})`,
    };
  return {
    name: 'sandbox limits',
    ok: false,
    warnOnly: true,
    detail: `bwrap sandboxes run without ${support.missing.join(' and ')} limits (${support.reason ?? 'no usable cgroups'})`,
    fix: isRoot
      ? 'bwrap needs cgroup v2 with the pids and memory controllers (systemd.unified_cgroup_hierarchy=1 on the kernel command line) or writable cgroup v1 pids and memory hierarchies; or use Docker (CONTAINER_RUNTIME=docker), which sets both limits itself'
      : 'run nanoclaw as root on a machine with cgroup v2 (bwrap sandboxes then get their own cgroup under /sys/fs/cgroup/nanoclaw), or use Docker (CONTAINER_RUNTIME=docker), which sets both limits itself',
  };
}
