import type { AgentInput, SandboxOutput, ScheduleType } from './contract/ipc.js';
import type { Failure } from './failure-notice.js';

type Strings<K extends string> = Record<K, string>;

export type NewMessage = Strings<'id' | 'chatJid' | 'sender' | 'senderName' | 'content' | 'timestamp'> & {
  isFromMe: boolean;
  isBotMessage: boolean;
};

export type AdditionalMount = { hostPath: string; containerPath?: string; readonly?: boolean };

export type RegisteredGroup = Strings<'jid' | 'name' | 'folder' | 'trigger' | 'addedAt'> & {
  requiresTrigger: boolean;
  isMain: boolean;
  containerConfig?: { additionalMounts?: AdditionalMount[]; timeoutMs?: number };
};

export type ChatInfo = Strings<'jid' | 'name' | 'lastMessageTime' | 'channel'> & { isGroup: boolean };

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
export type AgentOutput = SandboxOutput & { failure?: Failure };

export type AgentRunHooks = {
  onOutput(output: AgentOutput): Promise<void>;
  onStarted?(sandboxName: string): void;
};

export type AgentRunner = {
  run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput>;
};

export type ScheduledTask = Strings<
  'id' | 'groupFolder' | 'chatJid' | 'prompt' | 'scheduleValue' | 'createdAt'
> &
  Record<'nextRun' | 'lastRun' | 'lastResult', string | null> & {
    scheduleType: ScheduleType;
    contextMode: 'group' | 'isolated';
    status: 'active' | 'paused' | 'completed';
  };

export type TaskRunLog = Record<'result' | 'error', string | null> & {
  taskId: string;
  runAt: string;
  durationMs: number;
  status: 'success' | 'error';
};
