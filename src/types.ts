/** Shared contracts between the host's subsystems. */

/** One chat message as stored and routed. Timestamps are ISO-8601 UTC strings. */
export interface NewMessage {
  id: string;
  chatJid: string;
  sender: string;
  senderName: string;
  content: string;
  timestamp: string;
  isFromMe: boolean;
  /** Sent by the assistant itself; never fed back to an agent as input. */
  isBotMessage: boolean;
}

export interface AdditionalMount {
  /** Host path; `~` is expanded and symlinks resolved before it is checked against the allowlist. */
  hostPath: string;
  /** Relative name under /workspace/extra/. Defaults to the host path's basename. */
  containerPath?: string;
  /** Defaults to read-only. */
  readonly?: boolean;
}

export interface ContainerConfig {
  additionalMounts?: AdditionalMount[];
  /** Overrides CONTAINER_TIMEOUT for this group (ms). */
  timeoutMs?: number;
}

export interface RegisteredGroup {
  jid: string;
  name: string;
  /** Directory name under groups/, data/ipc/, data/sessions/: [A-Za-z0-9][A-Za-z0-9_-]*, not "global". */
  folder: string;
  trigger: string;
  requiresTrigger: boolean;
  isMain: boolean;
  addedAt: string;
  containerConfig?: ContainerConfig;
}

export interface ChatInfo {
  jid: string;
  name: string;
  lastMessageTime: string;
  channel: string;
  isGroup: boolean;
}

/** What a channel reports to the host. */
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

/** A chat transport (WhatsApp, the local web chat, ...). */
export interface Channel {
  readonly name: string;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  /** True when this channel is responsible for delivering to the chat id. */
  ownsJid(jid: string): boolean;
  sendMessage(jid: string, text: string): Promise<void>;
  setTyping?(jid: string, isTyping: boolean): Promise<void>;
  /** Refresh the list of groups the channel can see (main's available_groups.json). */
  syncGroups?(force: boolean): Promise<void>;
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

/** One result framed by the output sentinels. */
export interface AgentOutput {
  status: 'success' | 'error';
  result: string | null;
  newSessionId?: string;
  error?: string;
}

export interface AgentRunHooks {
  /** Called for every framed result, in order; the run waits for each call to settle. */
  onOutput(output: AgentOutput): Promise<void>;
  /** Called once the sandbox has started, with its name. */
  onStarted?(sandboxName: string): void;
}

/** The one narrow door through which the host runs an agent. */
export interface AgentRunner {
  run(group: RegisteredGroup, input: AgentInput, hooks: AgentRunHooks): Promise<AgentOutput>;
}

export type ScheduleType = 'cron' | 'interval' | 'once';
export type TaskStatus = 'active' | 'paused' | 'completed';
export type ContextMode = 'group' | 'isolated';

export interface ScheduledTask {
  id: string;
  groupFolder: string;
  chatJid: string;
  prompt: string;
  scheduleType: ScheduleType;
  scheduleValue: string;
  contextMode: ContextMode;
  nextRun: string | null;
  lastRun: string | null;
  lastResult: string | null;
  status: TaskStatus;
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
