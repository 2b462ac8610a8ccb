export type ChannelState = 'up' | 'down' | 'logged-out';

// What doctor reads. `told`: the person heard it is down, and hears when it is back.
export type ChannelHealthRecord = { state: ChannelState; since: string; told: boolean };

export const HEALTH_KEY_PREFIX = 'channel_health:';

export interface ChannelHealthDeps {
  state: { get(key: string): string | undefined; set(key: string, value: string): void };
  notify(text: string): void;
  downAfterMs?: number;
  now?: () => number;
}

// One notice to local:main when a channel has been down a minute or is logged out, and one when it is back.
export class ChannelHealth {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly deps: ChannelHealthDeps) {}

  report(channel: string, state: ChannelState): void {
    const { notify } = this.deps;
    const key = HEALTH_KEY_PREFIX + channel;
    const label = channel === 'whatsapp' ? 'WhatsApp' : channel;
    const previous = JSON.parse(this.deps.state.get(key) ?? 'null') as ChannelHealthRecord | null;
    // Down across a restart: the minute is counted again, since no timer survived.
    if (previous?.state === state && (state !== 'down' || previous.told || this.timers.has(channel))) return;
    clearTimeout(this.timers.get(channel));
    this.timers.delete(channel);
    const since = new Date((this.deps.now ?? Date.now)()).toISOString();
    const write = (told: boolean) => this.deps.state.set(key, JSON.stringify({ state, since, told }));
    const told = !!previous?.told;
    if (state === 'up' && told)
      notify(`${label} is connected again; messages waiting for it are on their way.`);
    if (state === 'logged-out')
      notify(
        `${label} was logged out; messages to it wait until you link it again (\`nanoclaw whatsapp-auth\` or this page).`,
      );
    write(state === 'logged-out' || (state === 'down' && told));
    if (state !== 'down' || told) return;
    const timer = setTimeout(() => {
      this.timers.delete(channel);
      notify(`${label} has been disconnected for over a minute; messages to it wait until it is back.`);
      write(true);
    }, this.deps.downAfterMs ?? 60_000);
    this.timers.set(channel, timer.unref());
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
