// 'transient' may succeed on a retry; 'permanent' never will, so the outbox drops the message.
export class ChannelSendError extends Error {
  override readonly name = 'ChannelSendError';

  constructor(
    message: string,
    readonly kind: 'transient' | 'permanent',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
