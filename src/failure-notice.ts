// The waiting messages run once the cause is gone: no need to send them again.
const LATER = ' I’ll answer once it’s fixed.';
const PERMANENT = {
  'no-credentials': `I can’t reach the model: no credentials are set. Add ANTHROPIC_API_KEY to .env.${LATER}`,
  'invalid-credentials': `I can’t reach the model: it refused the credentials. Put a valid key in .env.${LATER}`,
  'budget-spent': 'This chat’s daily model budget is spent; I’ll answer after midnight UTC.',
  'image-missing': `I can’t start my sandbox: the agent image is missing. Run \`nanoclaw build\`.${LATER}`,
  'runtime-missing': `I can’t start my sandbox: the container runtime is not available. Run \`nanoclaw doctor\`.${LATER}`,
  'invalid-request': 'Sorry, the model refused my request as invalid. Send another message to retry.',
};
const TRANSIENT = {
  upstream: 'the model service isn’t answering properly',
  timeout: 'the model service did not answer in time',
  'sandbox-crash': 'my sandbox stopped unexpectedly',
  'runtime-restarting': 'the container runtime is restarting',
  unknown: 'something went wrong',
};
export type PermanentCause = keyof typeof PERMANENT;
export type FailureCause = PermanentCause | keyof typeof TRANSIENT;
export type Failure = { kind: 'permanent' | 'transient'; cause: FailureCause };

export const failure = (cause: FailureCause): Failure => ({
  kind: cause in PERMANENT ? 'permanent' : 'transient',
  cause,
});

export function noticeText({ cause }: Failure, stage: 'retrying' | 'gave-up' = 'retrying') {
  if (cause in PERMANENT) return PERMANENT[cause as PermanentCause];
  const what = TRANSIENT[cause as keyof typeof TRANSIENT];
  return stage === 'retrying'
    ? `I couldn’t answer yet: ${what}. I’m retrying and will answer when it works.`
    : `Sorry, I still couldn’t answer: ${what}. I’ll try again when you send another message.`;
}

/**
 * A permanent cause blocks the chat until a cheap check says it is gone; new messages are told, once a
 * minute at most. A transient one is told on a streak's second failure and when the queue gives up.
 */
export class FailureNotices {
  private readonly blocked = new Map<string, { failure: Failure; folder: string }>();
  private readonly streak = new Map<string, { count: number; last: Failure }>();
  private readonly lastNotice = new Map<string, { at: number; seq: number }>();
  private timer: NodeJS.Timeout | undefined;
  private muted = false;

  constructor(
    private readonly deps: {
      send(jid: string, text: string): Promise<unknown>;
      /** undefined: cannot be told without a run (then the run goes ahead). */
      holds?(cause: PermanentCause, folder: string): Promise<boolean | undefined>;
      precheck?: readonly PermanentCause[];
      resume?(jid: string): void;
      recheckMs?: number;
    },
  ) {}

  async gate(jid: string, folder: string, newestSeq: number) {
    for (const f of [...(this.deps.precheck ?? []).map(failure), this.blocked.get(jid)?.failure])
      if (f && (await this.check(f, folder))) {
        await this.onRunFailed(jid, folder, f, newestSeq);
        return true;
      }
    this.blocked.delete(jid);
    return false;
  }

  isBlocked = (jid: string) => this.blocked.has(jid);

  async onRunFailed(jid: string, folder: string, f: Failure, seq: number) {
    if (f.kind === 'permanent') {
      this.streak.delete(jid);
      this.blocked.set(jid, { failure: f, folder });
      if (!this.timer && !this.muted && this.deps.holds)
        this.timer = setInterval(() => void this.recheck(), this.deps.recheckMs ?? 5_000).unref();
      const last = this.lastNotice.get(jid);
      if (last && (seq <= last.seq || Date.now() - last.at < 60_000)) return;
      this.lastNotice.set(jid, { at: Date.now(), seq });
      return this.say(jid, noticeText(f));
    }
    const count = (this.streak.get(jid)?.count ?? 0) + 1;
    this.streak.set(jid, { count, last: f });
    if (count === 2) await this.say(jid, noticeText(f));
  }

  async onGaveUp(jid: string) {
    const last = this.streak.get(jid)?.last;
    this.streak.delete(jid);
    if (last) await this.say(jid, noticeText(last, 'gave-up'));
  }

  onRunSucceeded(jid: string) {
    for (const map of [this.streak, this.blocked, this.lastNotice]) map.delete(jid);
  }

  mute() {
    this.muted = true;
    clearInterval(this.timer);
  }

  private check = ({ cause }: Failure, folder: string) =>
    this.deps.holds?.(cause as PermanentCause, folder).catch(() => undefined);

  private async recheck() {
    for (const [jid, { failure: f, folder }] of [...this.blocked]) {
      if ((await this.check(f, folder)) !== false || this.blocked.get(jid)?.failure !== f) continue;
      this.blocked.delete(jid);
      this.deps.resume?.(jid);
    }
    if (this.blocked.size === 0) this.timer = void clearInterval(this.timer);
  }

  private async say(jid: string, text: string) {
    if (!this.muted) await this.deps.send(jid, text);
  }
}
