export type ChannelState = 'up' | 'down' | 'logged-out';

/** What doctor reads: the last state of each channel, kept in router_state. */
export interface ChannelHealthRecord {
  state: ChannelState;
  since: string;
  /** The person was told it is down; they are told again when it is back. */
  told: boolean;
}

export const HEALTH_KEY_PREFIX = 'channel_health:';

const LABELS: Record<string, string> = { whatsapp: 'WhatsApp' };

export interface ChannelHealthDeps {
  state: { get(key: string): string | undefined; set(key: string, value: string): void };
  /** One notice to the person (local:main). */
  notify(text: string): void;
  downAfterMs?: number;
  now?: () => number;
}

/** One notice when a channel has been down a minute or is logged out, and one when it is back. */
export class ChannelHealth {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly deps: ChannelHealthDeps) {}

  report(channel: string, state: ChannelState): void {
    const previous = this.read(channel);
    // Down across a restart: the minute is counted again, since no timer survived.
    if (previous?.state === state && (state !== 'down' || previous.told || this.timers.has(channel))) return;
    clearTimeout(this.timers.get(channel));
    this.timers.delete(channel);
    const label = LABELS[channel] ?? channel;
    const told = previous?.told === true;
    const since = new Date((this.deps.now ?? Date.now)()).toISOString();
    if (state === 'up') {
      if (told) this.deps.notify(`${label} is connected again; messages waiting for it are on their way.`);
      return this.write(channel, { state, since, told: false });
    }
    if (state === 'logged-out') {
      if (!told || previous?.state !== 'logged-out')
        this.deps.notify(
          `${label} was logged out. Messages to it wait until it is linked again: run \`nanoclaw whatsapp-auth\` or link it from this page.`,
        );
      return this.write(channel, { state, since, told: true });
    }
    this.write(channel, { state, since, told });
    if (told) return;
    const timer = setTimeout(() => {
      this.timers.delete(channel);
      const now = this.read(channel);
      if (now?.state !== 'down' || now.told) return;
      this.deps.notify(
        `${label} has been disconnected for over a minute; messages to it wait until it is back.`,
      );
      this.write(channel, { ...now, told: true });
    }, this.deps.downAfterMs ?? 60_000);
    timer.unref();
    this.timers.set(channel, timer);
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private read(channel: string): ChannelHealthRecord | undefined {
    const raw = this.deps.state.get(HEALTH_KEY_PREFIX + channel);
    try {
      return raw ? (JSON.parse(raw) as ChannelHealthRecord) : undefined;
    } catch {
      return undefined;
    }
  }

  private write(channel: string, record: ChannelHealthRecord): void {
    this.deps.state.set(HEALTH_KEY_PREFIX + channel, JSON.stringify(record));
  }
}
