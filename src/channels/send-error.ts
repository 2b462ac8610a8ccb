// 'permanent': no retry will succeed, so the outbox drops the message.
export class ChannelSendError extends Error {
  constructor(
    message: string,
    readonly kind: 'transient' | 'permanent',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
