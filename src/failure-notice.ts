import { logger } from './logger.js';

const WILL_ANSWER = 'I’ll answer your messages as soon as that is fixed.';
// Whoever knows the cause sets it: the sandbox runner, the model proxy.
const PERMANENT = {
  'no-credentials': `I can’t reach the model: no credentials are set. Add ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) to the .env file; ${WILL_ANSWER}`,
  'invalid-credentials': `I can’t reach the model: it refused the credentials in the .env file. Put a valid ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) there; ${WILL_ANSWER}`,
  'budget-spent':
    'This chat’s daily model budget is spent, so I can’t answer until it resets (midnight UTC); I’ll answer then.',
  'image-missing': `I can’t start my sandbox: the agent image is missing. Run \`nanoclaw build\`; ${WILL_ANSWER}`,
  'runtime-missing': `I can’t start my sandbox: the container runtime is not available. Start it (\`nanoclaw doctor\` shows how); ${WILL_ANSWER}`,
  'invalid-request':
    'Sorry, the model refused my request as invalid. Send another message to try again; if this keeps happening, run `nanoclaw doctor`.',
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
export interface Failure {
  kind: 'permanent' | 'transient';
  cause: FailureCause;
}

export const failure = (cause: FailureCause): Failure => ({
  kind: cause in PERMANENT ? 'permanent' : 'transient',
  cause,
});

export function noticeText({ cause }: Failure, stage: 'retrying' | 'gave-up' = 'retrying'): string {
  if (cause in PERMANENT) return PERMANENT[cause as PermanentCause];
  const what = TRANSIENT[cause as keyof typeof TRANSIENT];
  return stage === 'retrying'
    ? `I couldn’t answer yet: ${what}. I’m retrying and will answer when it works.`
    : `Sorry, I still couldn’t answer: ${what}. I’ll try again when you send another message.`;
}

export interface FailureNoticesDeps {
  send(jid: string, text: string): Promise<unknown>;
  /** undefined: cannot be told without a run (then the run goes ahead). */
  holds?(cause: PermanentCause, folder: string): Promise<boolean | undefined>;
  /** Checked before every run, known without a sandbox. */
  precheck?: readonly PermanentCause[];
  resume?(jid: string): void;
  recheckMs?: number;
}

/**
 * Permanent causes block the chat until they are gone (checked cheaply, on each message and
 * every few seconds), each message meanwhile told, one notice per minute. Transient ones are told
 * after the second failure of a streak and when the queue gives up.
 */
export class FailureNotices {
  private readonly blocked = new Map<string, { failure: Failure; folder: string }>();
  private readonly streak = new Map<string, { count: number; last: Failure }>();
  private readonly lastNotice = new Map<string, { at: number; cause: FailureCause; seq: number }>();
  private timer: NodeJS.Timeout | undefined;
  private muted = false;

  constructor(private readonly deps: FailureNoticesDeps) {}

  /** Before a run: true when a permanent cause still holds (the person has been told). */
  async gate(jid: string, folder: string, newestSeq: number): Promise<boolean> {
    const known = this.blocked.get(jid)?.failure;
    for (const f of [...(this.deps.precheck ?? []).map(failure), ...(known ? [known] : [])])
      if (await this.check(f, folder)) {
        this.block(jid, folder, f);
        await this.notice(jid, f, newestSeq);
        return true;
      }
    this.blocked.delete(jid);
    return false;
  }

  isBlocked(jid: string): boolean {
    return this.blocked.has(jid);
  }

  async onRunFailed(jid: string, folder: string, f: Failure, newestSeq: number): Promise<void> {
    if (f.kind === 'permanent') {
      this.streak.delete(jid);
      this.block(jid, folder, f);
      return this.notice(jid, f, newestSeq);
    }
    const count = (this.streak.get(jid)?.count ?? 0) + 1;
    this.streak.set(jid, { count, last: f });
    if (count === 2) await this.say(jid, noticeText(f));
  }

  async onGaveUp(jid: string): Promise<void> {
    const last = this.streak.get(jid)?.last;
    this.streak.delete(jid);
    if (last) await this.say(jid, noticeText(last, 'gave-up'));
  }

  onRunSucceeded(jid: string): void {
    for (const map of [this.streak, this.blocked, this.lastNotice]) map.delete(jid);
  }

  /** Runs stopped on shutdown are no failure; the next start picks their messages up. */
  mute(): void {
    this.muted = true;
    clearInterval(this.timer);
  }

  private async check({ cause }: Failure, folder: string): Promise<boolean | undefined> {
    try {
      return await this.deps.holds?.(cause as PermanentCause, folder);
    } catch (err) {
      logger.warn({ cause, folder, err: String(err) }, 'cannot check a failure cause');
    }
  }

  private block(jid: string, folder: string, failure: Failure): void {
    this.blocked.set(jid, { failure, folder });
    if (this.timer || this.muted || !this.deps.holds) return;
    this.timer = setInterval(() => void this.recheck(), this.deps.recheckMs ?? 5_000).unref();
  }

  /** A cause that cannot be checked stays until the next message tries a run. */
  private async recheck(): Promise<void> {
    for (const [jid, { failure: f, folder }] of [...this.blocked]) {
      if ((await this.check(f, folder)) !== false || this.blocked.get(jid)?.failure !== f) continue;
      logger.info({ jid, cause: f.cause }, 'failure cause gone; running waiting messages');
      this.blocked.delete(jid);
      this.deps.resume?.(jid);
    }
    if (this.blocked.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** One notice per new message, shared by the messages of a minute with the same cause. */
  private async notice(jid: string, f: Failure, seq: number): Promise<void> {
    const last = this.lastNotice.get(jid);
    const now = Date.now();
    if (last && (seq <= last.seq || (last.cause === f.cause && now - last.at < 60_000))) return;
    this.lastNotice.set(jid, { at: now, cause: f.cause, seq });
    await this.say(jid, noticeText(f));
  }

  private async say(jid: string, text: string): Promise<void> {
    if (!this.muted) await this.deps.send(jid, text);
  }
}
