import type { Store } from './db/store.js';

export type ChannelState = 'up' | 'down' | 'logged-out';
// What doctor reads. `told`: the person heard it is down.
export type ChannelHealthRecord = { state: ChannelState; since: string; told: boolean };
export const HEALTH_KEY_PREFIX = 'channel_health:';

/** One notice to local:main when WhatsApp is down a minute or logged out. */
export class ChannelHealth {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly deps: {
      state: Pick<Store['state'], 'get' | 'set'>;
      notify(text: string): void;
      downAfterMs?: number;
    },
  ) {}

  report(state: ChannelState) {
    const { notify } = this.deps;
    const key = `${HEALTH_KEY_PREFIX}whatsapp`;
    const prev = JSON.parse(this.deps.state.get(key) ?? 'null') as ChannelHealthRecord | null;
    const told = !!prev?.told;
    // Down across a restart: the minute is counted again, since no timer survived.
    if (prev?.state === state && (state !== 'down' || told || this.timer)) return;
    this.stop();
    const since = new Date().toISOString();
    const write = (told: boolean) => this.deps.state.set(key, JSON.stringify({ state, since, told }));
    if (state === 'logged-out')
      notify('WhatsApp was logged out; link it again with `nanoclaw whatsapp-auth`.');
    write(state === 'logged-out' || (state === 'down' && told));
    if (state !== 'down' || told) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      notify('WhatsApp has been disconnected for over a minute; messages wait until it is back.');
      write(true);
    }, this.deps.downAfterMs ?? 60_000).unref();
  }

  stop() {
    this.timer = void clearTimeout(this.timer);
  }
}
