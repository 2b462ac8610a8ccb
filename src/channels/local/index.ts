export { LocalChannel, type LocalChannelDeps } from './local-channel.js';
export type { ChatSummary, HistoryMessage } from './api.js';
