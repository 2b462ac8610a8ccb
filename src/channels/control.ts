/** What the chat page (and the CLI through it) may ask of the running host besides chatting. */
export interface HostControl {
  /** False when nothing was running. */
  stopChat(jid: string): Promise<boolean>;
  tasks(jid: string): TaskView[];
  taskAction(jid: string, taskId: string, action: 'pause' | 'resume' | 'cancel'): Result;
  /** The person is typing (the page throttles it). */
  typing(jid: string): void;
  whatsapp: WhatsAppControl;
}

export type Result = { ok: true } | { ok: false; error: string };

export interface TaskView {
  id: string;
  prompt: string;
  scheduleType: 'cron' | 'interval' | 'once';
  scheduleValue: string;
  status: 'active' | 'paused' | 'completed';
  nextRun: string | null;
  lastResult: string | null;
  runs: { runAt: string; durationMs: number; status: 'success' | 'error'; result: string | null }[];
}

export interface WhatsAppState {
  status: 'unlinked' | 'linking' | 'linked' | 'cannot-reach' | 'logged-out';
  /** While linking: the QR code as an SVG document, or the pairing code for a phone. */
  qrSvg?: string;
  pairingCode?: string;
  /** Once linked: the account's own chat, registered as a main chat. */
  selfJid?: string;
  /** Why the last attempt failed, for the person. */
  error?: string;
}

export interface WhatsAppControl {
  state(): WhatsAppState;
  /** Starts linking in the background: a QR code, or a pairing code when a phone is given. */
  link(opts: { phone?: string }): Promise<void>;
  /** Logs out, deletes the credentials and stops the channel. */
  unlink(): Promise<void>;
  groups(): { jid: string; name: string; registered: boolean }[];
  /** Registers a known group under a folder named after it. */
  register(jid: string): Promise<{ ok: true; folder: string } | { ok: false; error: string }>;
  /** Returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}
