import { runAgentForGroup } from './agent-dispatch.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import type { StoredMessage } from './db/message-repo.js';
import type { Store } from './db/store.js';
import { failure, type FailureNotices } from './failure-notice.js';
import { GroupQueue } from './group-queue.js';
import { writeClose, writeInput } from './ipc/to-agent.js';
import { logFailure, logger } from './logger.js';
import { formatMessages, formatOutbound, hasTrigger, isAssistantEcho } from './router.js';
import type { AgentRunner, RegisteredGroup } from './types.js';

const PAGE = 1000;
const agentKey = (jid: string) => `agent_seq:${jid}`;
// During a run, the cursor a failure rolls back to; in SQLite, so it survives a killed host.
const runKey = (jid: string) => `agent_run:${jid}`;

/** Non-trigger messages stay behind the agent cursor: context for the next trigger. */
export class MessageLoop {
  readonly queue;
  private timer?: NodeJS.Timeout;
  private scheduled = false;
  private running = false;

  constructor(
    private readonly deps: {
      store: Store;
      config: Config;
      runner: AgentRunner;
      send(jid: string, text: string): Promise<unknown>;
      setTyping(jid: string, isTyping: boolean): Promise<void>;
      mayTrigger?(group: RegisteredGroup, message: StoredMessage): boolean;
      onUntriggered?(jid: string): void;
      failures?: FailureNotices;
    },
  ) {
    const { config, store } = deps;
    // Only a plain folder name is ever joined into an IPC path.
    const inFolder = (jid: string, fn: (folder: string) => void) => {
      const folder = store.groups.byJid(jid)?.folder ?? '';
      if (isValidFolder(folder)) fn(folder);
    };
    this.queue = new GroupQueue({
      ...config,
      jitterRatio: 0.2,
      processMessages: (jid) => this.run(jid),
      writeInput: (jid, text) => inFolder(jid, (folder) => writeInput(config, folder, text)),
      writeClose: (jid) => inFolder(jid, (folder) => writeClose(config, folder)),
      onGaveUp: (jid) => void deps.failures?.onGaveUp(jid),
    });
  }

  start() {
    this.running = true;
    for (const group of this.deps.store.groups.all()) {
      const { jid, folder } = group;
      const to = this.get(runKey(jid));
      if (to !== undefined) {
        if (this.cursor(jid) > to) {
          logger.warn({ group: folder, to }, 'rolling back a run interrupted by a host stop');
          this.set(agentKey(jid), to);
        }
        this.set(runKey(jid));
      }
      if (this.triggered(group, this.pending(jid).messages)) this.queue.enqueueMessageCheck(jid);
    }
    this.timer = setInterval(() => this.checkNow(), this.deps.config.safetyPollMs).unref();
  }

  stop() {
    this.running = false;
    clearInterval(this.timer);
  }

  notify() {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => this.checkNow());
  }

  private checkNow() {
    this.scheduled = false;
    if (this.running) logFailure('message check failed', {}, () => this.checkNewMessages(), 'error');
  }

  private get(key: string) {
    const value = this.deps.store.state.get(key);
    return value ? Number(value) : undefined;
  }
  private set = (key: string, seq?: number) => this.deps.store.state.set(key, String(seq ?? ''));
  private cursor = (jid: string) => this.get(agentKey(jid)) ?? 0;
  private real = (messages: StoredMessage[]) =>
    messages.filter((m) => !isAssistantEcho(m, this.deps.config.assistantName));

  /** Output of the group's message run reached a chat: what it was given is never run again. */
  markAnswered(jid: string) {
    if (this.get(runKey(jid)) !== undefined) this.set(runKey(jid), this.cursor(jid));
  }

  private triggered(group: RegisteredGroup, messages: StoredMessage[]) {
    const allowed = messages.filter((m) => this.deps.mayTrigger?.(group, m) ?? true);
    return group.isMain || !group.requiresTrigger
      ? allowed.length > 0
      : allowed.some((m) => hasTrigger(m.content, group.trigger));
  }

  private pending(jid: string) {
    const all = this.deps.store.messages.newSince([jid], this.cursor(jid), 500);
    return { messages: this.real(all), lastSeq: all.at(-1)?.seq ?? this.cursor(jid) };
  }

  checkNewMessages() {
    const { store } = this.deps;
    for (let n = PAGE; n === PAGE;) {
      const groups = new Map(store.groups.all().map((g) => [g.jid, g]));
      const fresh = store.messages.newSince([...groups.keys()], this.get('last_seen_seq') ?? 0, PAGE);
      n = fresh.length;
      if (n > 0) this.set('last_seen_seq', fresh.at(-1)!.seq);
      for (const jid of new Set(fresh.map((m) => m.chatJid))) {
        const messages = this.real(fresh.filter((m) => m.chatJid === jid));
        if (!this.triggered(groups.get(jid)!, messages)) {
          if (messages.length > 0) this.deps.onUntriggered?.(jid);
          continue;
        }
        const pending = this.pending(jid);
        if (pending.messages.length > 0 && this.queue.sendMessage(jid, formatMessages(pending.messages))) {
          this.set(agentKey(jid), pending.lastSeq);
          void this.deps.setTyping(jid, true).catch(() => undefined);
        } else this.queue.enqueueMessageCheck(jid);
      }
    }
  }

  runWarm = (jid: string) => this.run(jid, true);

  /** The cursor advances before the run; a failure rolls it back only to the last answered message. */
  private async run(jid: string, warm = false) {
    const { store, runner, config, failures } = this.deps;
    const group = store.groups.byJid(jid);
    if (!group) return true;
    const before = this.cursor(jid);
    const { messages, lastSeq } = this.pending(jid);
    let newest = messages.at(-1)?.seq ?? 0;
    if (!warm && (!this.triggered(group, messages) || (await failures?.gate(jid, group.folder, newest))))
      return true;
    const typing = (on: boolean) => this.deps.setTyping(jid, on).catch(() => undefined);
    this.set(runKey(jid), before);
    if (!warm) {
      this.set(agentKey(jid), lastSeq);
      await typing(true);
    }
    const prompt = warm ? '' : formatMessages(messages);
    const output = await runAgentForGroup({ ...config, store, runner }, group, prompt, {
      chatJid: jid,
      useGroupSession: true,
      onResult: async ({ result, status }) => {
        const text = formatOutbound(result);
        // Marked before sending: a host dying in between loses the answer rather than repeats it.
        if (text || status === 'success') this.markAnswered(jid);
        if (text) await this.deps.send(jid, text);
        if (status === 'success') {
          await typing(false);
          this.queue.notifyIdle(jid);
        }
      },
    });
    const given = this.cursor(jid) > before;
    if (given) await typing(false);
    if (warm) newest = this.cursor(jid);
    const rollbackTo = this.get(runKey(jid)) ?? before;
    this.set(runKey(jid));
    const unanswered = this.cursor(jid) > rollbackTo;
    if (output.status === 'error') {
      if (!unanswered) return true; // its output was sent: not retried
      this.set(agentKey(jid), rollbackTo);
      const why = output.failure ?? failure('unknown');
      const permanent = why.kind === 'permanent';
      const log = { group: group.folder, error: output.error, cause: why.cause };
      logger.warn(log, `run failed; messages ${permanent ? 'wait' : 'will be retried'}`);
      void failures?.onRunFailed(jid, group.folder, why, newest);
      return permanent;
    }
    // Follow-ups piped in while the sandbox was closing were never read: run them again.
    if (unanswered && (rollbackTo > before || warm)) {
      this.set(agentKey(jid), rollbackTo);
      this.queue.enqueueMessageCheck(jid);
    }
    if (given) failures?.onRunSucceeded(jid);
    return true;
  }
}
