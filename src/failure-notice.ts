/**
 * When a run fails, the person hears about it once, in plain words, instead of silence.
 *
 * - permanent: won't heal by retrying soon (no credentials, budget spent, runtime down, image
 *   missing). Said at the first failure; the queue still retries, so a fixed cause recovers.
 * - upstream: the model service failed (overloaded, 5xx, timeout). The SDK in the sandbox has
 *   already retried with back-off before the run failed, so this is said at the first failure too.
 * - other: said only when the queue gives up retrying (a crash that a retry may well fix).
 *
 * One notice per failure streak; a successful run resets it.
 */
export type FailureKind = 'permanent' | 'upstream' | 'other';

export interface FailureExplanation {
  kind: FailureKind;
  message: string;
}

const RUNTIME_DOWN = [
  'cannot connect to the docker daemon',
  'is the docker daemon running',
  'cannot connect to podman',
  'runtime is not running',
  'runtime unavailable',
];

export function explainFailure(error: string): FailureExplanation {
  const text = error.toLowerCase();
  if (
    text.includes('no model credentials') ||
    text.includes('authentication_error') ||
    text.includes('invalid x-api-key')
  ) {
    return {
      kind: 'permanent',
      message:
        'I can’t reach the model: no valid credentials are configured. Add ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) to the .env file and run `nanoclaw doctor`.',
    };
  }
  if (text.includes('budget')) {
    return {
      kind: 'permanent',
      message: 'This chat’s daily model budget is spent, so I can’t answer until it resets (midnight UTC).',
    };
  }
  if (
    RUNTIME_DOWN.some((phrase) => text.includes(phrase)) ||
    (text.includes('runtime') &&
      (text.includes('not running') || text.includes('unavailable') || text.includes('install')))
  ) {
    return {
      kind: 'permanent',
      message:
        'I can’t start my sandbox: the container runtime is not available. I’ll keep trying for a few minutes; run `nanoclaw doctor` to see what to fix.',
    };
  }
  if (
    text.includes('image') &&
    (text.includes('not found') || text.includes('no such image') || text.includes('missing'))
  ) {
    return {
      kind: 'permanent',
      message: 'I can’t start my sandbox: the agent image is missing. Run `nanoclaw build`.',
    };
  }
  if (text.includes('overloaded') || /\b529\b/.test(text)) {
    return {
      kind: 'upstream',
      message:
        'The model service is overloaded right now, so I couldn’t answer yet. I’ll keep trying for a few minutes; if I still can’t, please send your message again later.',
    };
  }
  if (
    /api error: (5\d\d|429)\b/.test(text) ||
    text.includes('rate_limit_error') ||
    text.includes('did not answer in time') ||
    text.includes('could not reach the model api')
  ) {
    return {
      kind: 'upstream',
      message:
        'The model service isn’t answering properly right now, so I couldn’t answer yet. I’ll keep trying for a few minutes; if I still can’t, please send your message again later.',
    };
  }
  if (/^sandbox exited with (code|signal)\b/.test(text)) {
    return {
      kind: 'other',
      message:
        'Sorry, I couldn’t answer: my sandbox stopped unexpectedly, several times. I’ll try again when you send another message.',
    };
  }
  return {
    kind: 'other',
    message: `Sorry, I couldn’t answer (${shorten(error)}). I’ll try again when you send another message.`,
  };
}

function shorten(error: string): string {
  const line = error.split('\n').find((l) => l.trim()) ?? 'unknown error';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

export class FailureNotices {
  private readonly notified = new Set<string>();
  private readonly lastError = new Map<string, string>();
  private muted = false;

  constructor(private readonly send: (jid: string, text: string) => Promise<unknown>) {}

  /** A run failed before any output reached the chat. */
  async onRunFailed(jid: string, error: string): Promise<void> {
    this.lastError.set(jid, error);
    const { kind, message } = explainFailure(error);
    if (kind !== 'other') await this.notifyOnce(jid, message);
  }

  /** The queue stopped retrying this chat. */
  async onGaveUp(jid: string): Promise<void> {
    await this.notifyOnce(jid, explainFailure(this.lastError.get(jid) ?? 'unknown error').message);
  }

  /** Budget or other out-of-band refusals (model proxy). */
  async notify(jid: string, message: string): Promise<void> {
    await this.notifyOnce(jid, message);
  }

  onRunSucceeded(jid: string): void {
    this.notified.delete(jid);
    this.lastError.delete(jid);
  }

  /**
   * On shutdown runs end because the host stops them: that is no failure to tell anyone about,
   * and their messages are picked up again at the next start.
   */
  mute(): void {
    this.muted = true;
  }

  private async notifyOnce(jid: string, message: string): Promise<void> {
    if (this.muted || this.notified.has(jid)) return;
    this.notified.add(jid);
    await this.send(jid, message);
  }
}
