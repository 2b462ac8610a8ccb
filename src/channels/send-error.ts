/** Why a send failed: 'transient' may succeed later (retry), 'permanent' never will (drop). */
export type SendFailureKind = 'transient' | 'permanent';

export class ChannelSendError extends Error {
  override readonly name = 'ChannelSendError';

  constructor(
    message: string,
    readonly kind: SendFailureKind,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
