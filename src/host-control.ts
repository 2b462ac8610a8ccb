import type { HostControl, WhatsAppControl } from './channels/control.js';
import type { Config } from './config.js';
import type { Store } from './db/store.js';
import type { SandboxRunner } from './sandbox/sandbox-runner.js';
import { cancelTask, pauseTask, resumeTask } from './scheduler/task-actions.js';

/** The page's controls, each limited to the chat's own group. */
export function hostControl(deps: {
  config: Config;
  store: Store;
  runner: SandboxRunner;
  whatsapp: WhatsAppControl;
  notice(jid: string, text: string): void;
  setTyping(jid: string, on: boolean): Promise<void>;
  onTasksChanged(folder: string): void;
  onTyping(jid: string): void;
}): HostControl {
  const { store } = deps;
  const folderOf = (jid: string) => store.groups.byJid(jid)?.folder;
  return {
    async stopChat(jid) {
      const folder = folderOf(jid);
      if (!folder || !(await deps.runner.stopGroup(folder))) return false;
      await deps.setTyping(jid, false);
      deps.notice(jid, 'Stopped.');
      return true;
    },
    tasks: (jid) =>
      store.tasks
        .all()
        .filter((t) => t.groupFolder === folderOf(jid))
        .map((t) => ({ ...t, runs: store.tasks.runLogs(t.id, 20) })),
    taskAction(jid, id, action) {
      const folder = store.tasks.byId(id)?.groupFolder;
      if (!folder || folder !== folderOf(jid)) return { ok: false, error: `no task ${id} in this chat` };
      const result =
        action === 'resume'
          ? resumeTask(store, id, deps.config.timezone, new Date())
          : { pause: pauseTask, cancel: cancelTask }[action](store, id);
      if (!result.ok) return result;
      deps.onTasksChanged(folder);
      return { ok: true };
    },
    typing: deps.onTyping,
    whatsapp: deps.whatsapp,
  };
}

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
