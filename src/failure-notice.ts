/**
 * Told once per failure streak: `permanent` and `upstream` (the SDK has already retried) causes
 * at the first failure, `other` only when the queue gives up retrying.
 */
type FailureKind = 'permanent' | 'upstream' | 'other';

const BUDGET_SPENT =
  'This chat’s daily model budget is spent, so I can’t answer until it resets (midnight UTC).';
const RETRYING =
  'I’ll keep trying for a few minutes; if I still can’t, please send your message again later.';
const NEXT_MESSAGE = 'I’ll try again when you send another message.';

/** First match wins, on the lower-cased error. */
const RULES: [FailureKind, (text: string) => boolean, string][] = [
  [
    'permanent',
    (t) => /no model credentials|authentication_error|invalid x-api-key/.test(t),
    'I can’t reach the model: no valid credentials are configured. Add ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) to the .env file and run `nanoclaw doctor`.',
  ],
  ['permanent', (t) => t.includes('budget'), BUDGET_SPENT],
  [
    'permanent',
    (t) =>
      /cannot connect to the docker daemon|is the docker daemon running|cannot connect to podman/.test(t) ||
      (t.includes('runtime') && /not running|unavailable|install/.test(t)),
    'I can’t start my sandbox: the container runtime is not available. I’ll keep trying for a few minutes; run `nanoclaw doctor` to see what to fix.',
  ],
  [
    'permanent',
    (t) => t.includes('image') && /not found|no such image|missing/.test(t),
    'I can’t start my sandbox: the agent image is missing. Run `nanoclaw build`.',
  ],
  [
    'upstream',
    (t) => /overloaded|\b529\b/.test(t),
    `The model service is overloaded right now, so I couldn’t answer yet. ${RETRYING}`,
  ],
  [
    'upstream',
    (t) =>
      /api error: (5\d\d|429)\b|rate_limit_error|did not answer in time|could not reach the model api/.test(
        t,
      ),
    `The model service isn’t answering properly right now, so I couldn’t answer yet. ${RETRYING}`,
  ],
  [
    'other',
    (t) => /^sandbox exited with (code|signal)\b/.test(t),
    `Sorry, I couldn’t answer: my sandbox stopped unexpectedly, several times. ${NEXT_MESSAGE}`,
  ],
];

export function explainFailure(error: string): { kind: FailureKind; message: string } {
  const text = error.toLowerCase();
  const rule = RULES.find(([, matches]) => matches(text));
  if (rule) return { kind: rule[0], message: rule[2] };
  let line = error.split('\n').find((l) => l.trim()) ?? 'unknown error';
  if (line.length > 160) line = `${line.slice(0, 157)}...`;
  return { kind: 'other', message: `Sorry, I couldn’t answer (${line}). ${NEXT_MESSAGE}` };
}

export class FailureNotices {
  private readonly notified = new Set<string>();
  private readonly lastError = new Map<string, string>();
  private muted = false;

  constructor(private readonly send: (jid: string, text: string) => Promise<unknown>) {}

  async onRunFailed(jid: string, error: string): Promise<void> {
    this.lastError.set(jid, error);
    const { kind, message } = explainFailure(error);
    if (kind !== 'other') await this.notifyOnce(jid, message);
  }

  async onGaveUp(jid: string): Promise<void> {
    await this.notifyOnce(jid, explainFailure(this.lastError.get(jid) ?? 'unknown error').message);
  }

  onBudgetSpent(jid: string | undefined): void {
    if (jid) void this.notifyOnce(jid, BUDGET_SPENT);
  }

  onRunSucceeded(jid: string): void {
    this.notified.delete(jid);
    this.lastError.delete(jid);
  }

  /** Runs stopped on shutdown are no failure; the next start picks their messages up. */
  mute(): void {
    this.muted = true;
  }

  private async notifyOnce(jid: string, message: string): Promise<void> {
    if (this.muted || this.notified.has(jid)) return;
    this.notified.add(jid);
    await this.send(jid, message);
  }
}
