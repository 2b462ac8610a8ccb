import type { Failure } from './failure-notice.js';
import type { ScheduleType } from './contract/ipc.js';

export interface NewMessage {
  id: string;
  chatJid: string;
  sender: string;
  senderName: string;
  content: string;
  timestamp: string;
  isFromMe: boolean;
  isBotMessage: boolean;
}

export type AdditionalMount = { hostPath: string; containerPath?: string; readonly?: boolean };

export interface RegisteredGroup {
  jid: string;
  name: string;
  folder: string;
  trigger: string;
  requiresTrigger: boolean;
  isMain: boolean;
  addedAt: string;
  containerConfig?: { additionalMounts?: AdditionalMount[]; timeoutMs?: number };
}

export interface ChatInfo {
  jid: string;
  name: string;
  lastMessageTime: string;
  channel: string;
  isGroup: boolean;
}

export interface ChannelCallbacks {
  onMessage(message: NewMessage): void;
  onChatMetadata(chat: {
    jid: string;
    timestamp: string;
    name?: string;
    channel: string;
    isGroup?: boolean;
  }): void;
}

export interface Channel {
  readonly name: string;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  ownsJid(jid: string): boolean;
  sendMessage(jid: string, text: string): Promise<void>;
  setTyping?(jid: string, isTyping: boolean): Promise<void>;
  syncGroups?(force: boolean): Promise<void>;
  maxTextLength?: number;
}

/** Sent to the sandbox on stdin. Never contains secrets. */
export interface AgentInput {
  prompt: string;
  sessionId?: string;
  groupFolder: string;
  chatJid: string;
  isMain: boolean;
  isScheduledTask?: boolean;
  assistantName: string;
}

export interface AgentOutput {
  status: 'success' | 'error';
  result: string | null;
  newSessionId?: string;
  error?: string;
  failure?: Failure;
}

export interface AgentRunHooks {
  onOutput(output: AgentOutput): Promise<void>;
  onStarted?(sandboxName: string): void;
}

export interface AgentRunner {
  run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput>;
}

export interface ScheduledTask {
  id: string;
  groupFolder: string;
  chatJid: string;
  prompt: string;
  scheduleType: ScheduleType;
  scheduleValue: string;
  contextMode: 'group' | 'isolated';
  nextRun: string | null;
  lastRun: string | null;
  lastResult: string | null;
  status: 'active' | 'paused' | 'completed';
  createdAt: string;
}

export interface TaskRunLog {
  taskId: string;
  runAt: string;
  durationMs: number;
  status: 'success' | 'error';
  result: string | null;
  error: string | null;
}
