import { logger } from '../../logger.js';
import type { ChannelCallbacks } from '../../types.js';
import type { WASocketLike } from './socket.js';

export const GROUP_SYNC_INTERVAL_MS = 24 * 60 * 60 * 1000;
const GROUP_SYNC_KEY = 'whatsapp_last_group_sync';

export interface GroupSyncDeps {
  callbacks: ChannelCallbacks;
  onGroupsSynced?(groups: Array<{ jid: string; name: string }>): void;
  /** Keeps the last sync time across restarts; without it, only for this process. */
  syncState?: { get(key: string): string | undefined; set(key: string, value: string): void };
  now: () => number;
}

/** Learns which groups we are in (names included), at most once a day unless forced. */
export class GroupSync {
  private lastSyncMs: number | undefined;

  constructor(private readonly deps: GroupSyncDeps) {}

  /** Never throws: a failed fetch is logged and retried at the next opportunity. */
  async run(sock: WASocketLike, force: boolean): Promise<void> {
    const last = this.lastSync();
    if (!force && last !== undefined && this.deps.now() - last < GROUP_SYNC_INTERVAL_MS) return;
    let fetched: Awaited<ReturnType<WASocketLike['groupFetchAllParticipating']>>;
    try {
      fetched = await sock.groupFetchAllParticipating();
    } catch (err) {
      logger.warn({ err }, 'whatsapp group sync failed');
      return;
    }
    const groups = Object.entries(fetched).map(([key, meta]) => ({
      jid: meta.id || key,
      name: meta.subject,
      createdMs: (meta.creation ?? 0) * 1000,
    }));
    for (const group of groups) {
      // The creation time, not now: the chat list orders by last message, and a sync is not one.
      this.deps.callbacks.onChatMetadata({
        jid: group.jid,
        name: group.name,
        timestamp: new Date(group.createdMs).toISOString(),
        channel: 'whatsapp',
        isGroup: true,
      });
    }
    this.deps.onGroupsSynced?.(groups.map(({ jid, name }) => ({ jid, name })));
    this.record(this.deps.now());
    logger.info({ count: groups.length }, 'whatsapp groups synced');
  }

  private lastSync(): number | undefined {
    const stored = this.deps.syncState?.get(GROUP_SYNC_KEY);
    const parsed = stored ? Date.parse(stored) : NaN;
    return Number.isFinite(parsed) ? parsed : this.lastSyncMs;
  }

  private record(ms: number): void {
    this.lastSyncMs = ms;
    this.deps.syncState?.set(GROUP_SYNC_KEY, new Date(ms).toISOString());
  }
}
