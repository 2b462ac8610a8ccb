import type { HostControl, Result, TaskView, WhatsAppControl } from './channels/control.js';
import type { Config } from './config.js';
import type { Store } from './db/store.js';
import type { SandboxRunner } from './sandbox/sandbox-runner.js';
import { cancelTask, pauseTask, resumeTask } from './scheduler/task-actions.js';

export interface HostControlDeps {
  config: Config;
  store: Store;
  runner: SandboxRunner;
  whatsapp: WhatsAppControl;
  notice(jid: string, text: string): void;
  setTyping(jid: string, on: boolean): Promise<void>;
  onTasksChanged(folder: string): void;
  onTyping(jid: string): void;
}

/** The page's controls, each limited to the chat's own group. */
export function hostControl(deps: HostControlDeps): HostControl {
  const { store } = deps;
  const groupOf = (jid: string) => store.groups.byJid(jid);
  return {
    async stopChat(jid) {
      const group = groupOf(jid);
      if (!group || !(await deps.runner.stopGroup(group.folder))) return false;
      await deps.setTyping(jid, false);
      deps.notice(jid, 'Stopped.');
      return true;
    },
    tasks(jid): TaskView[] {
      const folder = groupOf(jid)?.folder;
      return store.tasks
        .all()
        .filter((t) => t.groupFolder === folder)
        .map((t) => ({ ...t, runs: store.tasks.runLogs(t.id, 20) }));
    },
    taskAction(jid, taskId, action): Result {
      const task = store.tasks.byId(taskId);
      if (!task || task.groupFolder !== groupOf(jid)?.folder)
        return { ok: false, error: `no task ${taskId} in this chat` };
      const result =
        action === 'pause'
          ? pauseTask(store, taskId)
          : action === 'resume'
            ? resumeTask(store, taskId, deps.config.timezone, new Date())
            : cancelTask(store, taskId);
      if (!result.ok) return { ok: false, error: result.error };
      deps.onTasksChanged(task.groupFolder);
      return { ok: true };
    },
    typing: (jid) => {
      if (groupOf(jid)) deps.onTyping(jid);
    },
    whatsapp: deps.whatsapp,
  };
}

/** The local page's chat list: registered local chats, then the others seen. */
export function localChats(store: Store) {
  const rows = store.groups
    .all()
    .filter((g) => g.jid.startsWith('local:'))
    .map(({ jid, name, isMain }) => ({ jid, name, registered: true, isMain, lastMessageTime: '' }));
  for (const { jid, name, channel, lastMessageTime } of store.messages.listChats())
    if (channel === 'local' && !rows.some((r) => r.jid === jid))
      rows.push({ jid, name: name || jid, registered: false, isMain: false, lastMessageTime });
  return rows;
}
