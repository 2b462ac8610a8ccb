import type { ScheduledTask, TaskRunLog } from '../types.js';
import type { WhatsAppLink } from './whatsapp/linker.js';

// Controls of the running host for the chat page and the CLI.
export interface HostControl {
  stopChat(jid: string): Promise<boolean>; // false: nothing was running
  tasks(jid: string): TaskView[];
  taskAction(jid: string, taskId: string, action: 'pause' | 'resume' | 'cancel'): Result;
  typing(jid: string): void;
  whatsapp: WhatsAppControl;
}

export type Result = { ok: true } | { ok: false; error: string };

export type TaskView = Omit<
  ScheduledTask,
  'groupFolder' | 'chatJid' | 'contextMode' | 'lastRun' | 'createdAt'
> & {
  runs: Omit<TaskRunLog, 'taskId' | 'error'>[];
};

export interface WhatsAppState {
  status: 'unlinked' | 'linking' | 'linked' | 'cannot-reach' | 'logged-out';
  qrSvg?: string;
  pairingCode?: string;
  selfJid?: string;
  error?: string;
}

export type WhatsAppControl = Pick<
  WhatsAppLink,
  'state' | 'link' | 'unlink' | 'groups' | 'register' | 'onChange'
>;
