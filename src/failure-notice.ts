/**
 * When a run fails for good, the person hears about it once, in plain words, instead of silence.
 * Known causes get a specific message at the first failure; anything else is reported when the
 * queue gives up retrying. One notice per failure streak; a successful run resets it.
 */
export function explainFailure(error: string): { permanent: boolean; message: string } {
  const text = error.toLowerCase();
  if (
    text.includes('no model credentials') ||
    text.includes('authentication_error') ||
    text.includes('invalid x-api-key')
  ) {
    return {
      permanent: true,
      message:
        'I can’t reach the model: no valid credentials are configured. Add ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) to the .env file and run `nanoclaw doctor`.',
    };
  }
  if (text.includes('budget')) {
    return {
      permanent: true,
      message: 'This chat’s daily model budget is spent, so I can’t answer until it resets (midnight UTC).',
    };
  }
  if (
    text.includes('runtime') &&
    (text.includes('not running') || text.includes('unavailable') || text.includes('install'))
  ) {
    return {
      permanent: true,
      message:
        'I can’t start my sandbox: the container runtime is not available. Run `nanoclaw doctor` to see what to fix.',
    };
  }
  if (
    text.includes('image') &&
    (text.includes('not found') || text.includes('no such image') || text.includes('missing'))
  ) {
    return {
      permanent: true,
      message: 'I can’t start my sandbox: the agent image is missing. Run `nanoclaw build`.',
    };
  }
  return {
    permanent: false,
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

  constructor(private readonly send: (jid: string, text: string) => Promise<unknown>) {}

  /** A run failed before any output reached the chat. */
  async onRunFailed(jid: string, error: string): Promise<void> {
    this.lastError.set(jid, error);
    const { permanent, message } = explainFailure(error);
    if (permanent) await this.notifyOnce(jid, message);
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

  private async notifyOnce(jid: string, message: string): Promise<void> {
    if (this.notified.has(jid)) return;
    this.notified.add(jid);
    await this.send(jid, message);
  }
}
