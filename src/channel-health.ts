export type ChannelState = 'up' | 'down' | 'logged-out';
// What doctor reads. `told`: the person heard it is down.
export type ChannelHealthRecord = { state: ChannelState; since: string; told: boolean };
export const HEALTH_KEY_PREFIX = 'channel_health:';

/** One notice to local:main when a channel is down a minute or logged out. */
export class ChannelHealth {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly deps: {
      state: { get(key: string): string | undefined; set(key: string, value: string): void };
      notify(text: string): void;
      downAfterMs?: number;
    },
  ) {}

  report(channel: string, state: ChannelState): void {
    const { notify } = this.deps;
    const key = HEALTH_KEY_PREFIX + channel;
    const name = channel === 'whatsapp' ? 'WhatsApp' : channel;
    const prev = JSON.parse(this.deps.state.get(key) ?? 'null') as ChannelHealthRecord | null;
    const told = !!prev?.told;
    // Down across a restart: the minute is counted again, since no timer survived.
    if (prev?.state === state && (state !== 'down' || told || this.timers.has(channel))) return;
    clearTimeout(this.timers.get(channel));
    this.timers.delete(channel);
    const since = new Date().toISOString();
    const write = (told: boolean) => this.deps.state.set(key, JSON.stringify({ state, since, told }));
    if (state === 'logged-out')
      notify(`${name} was logged out; link it again with \`nanoclaw whatsapp-auth\`.`);
    write(state === 'logged-out' || (state === 'down' && told));
    if (state !== 'down' || told) return;
    const timer = setTimeout(() => {
      this.timers.delete(channel);
      notify(`${name} has been disconnected for over a minute; messages wait until it is back.`);
      write(true);
    }, this.deps.downAfterMs ?? 60_000);
    this.timers.set(channel, timer.unref());
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
  }
}
