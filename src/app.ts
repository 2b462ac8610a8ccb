import fs from 'node:fs';
import path from 'node:path';
import { runTaskInSandbox } from './agent-dispatch.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import { openStore, type Store } from './db/store.js';
import { readSecrets } from './env-file.js';
import { FailureNotices } from './failure-notice.js';
import { ensureGroupFolder, ensureMainGroup, registerGroup } from './groups.js';
import { LocalChannel } from './channels/local/local-channel.js';
import { isWhatsAppLinked } from './channels/whatsapp/link-state.js';
import { handleMessageIpc } from './ipc/message-handler.js';
import { handleTaskIpc } from './ipc/task-handler.js';
import { IpcWatcher, type IpcKind } from './ipc/watcher.js';
import { logger } from './logger.js';
import { MessageLoop } from './message-loop.js';
import { Outbound } from './outbound.js';
import { createGroupPolicy, senderAllowed, type ResolvedLimits } from './policy/group-policy.js';
import { RateLimiter } from './policy/rate-limiter.js';
import { ProxyManager } from './proxy/proxy-manager.js';
import { formatOutbound } from './router.js';
import { prepareAgentSkills } from './sandbox/agent-skills.js';
import { loadMountAllowlist } from './sandbox/mount-allowlist.js';
import { hostIsRoot, type SandboxRuntime } from './sandbox/runtime.js';
import { SandboxRunner } from './sandbox/sandbox-runner.js';
import { TaskScheduler } from './scheduler/task-scheduler.js';
import { Snapshots } from './snapshots.js';
import type { Channel, ChannelCallbacks, NewMessage, RegisteredGroup } from './types.js';
import { todayUtc } from './util/today.js';

type WhatsAppModule = typeof import('./channels/whatsapp/whatsapp-channel.js');

export interface AppOptions {
  modelUpstreamTimeoutMs?: number;
  whatsapp?: WhatsAppModule;
}

/** The host, every part built once in dependency order. */
export class App {
  readonly store: Store;
  readonly limits: (folder: string) => ResolvedLimits;
  readonly proxies: ProxyManager;
  readonly runner: SandboxRunner;
  readonly channels: Channel[];
  readonly outbound: Outbound;
  readonly failures: FailureNotices;
  readonly loop: MessageLoop;
  readonly scheduler: TaskScheduler;
  readonly snapshots: Snapshots;
  readonly ipc: IpcWatcher;
  private stopping = false;

  /** Loads the (large) WhatsApp library only when an account is linked. */
  static async create(config: Config, runtime: SandboxRuntime, options: AppOptions = {}): Promise<App> {
    const linked = isWhatsAppLinked(config.authDir);
    if (!linked) logger.info('WhatsApp is not linked; run `nanoclaw whatsapp-auth` to link it');
    const whatsapp = linked ? await import('./channels/whatsapp/whatsapp-channel.js') : undefined;
    return new App(config, runtime, { ...options, ...(whatsapp && { whatsapp }) });
  }

  constructor(
    readonly config: Config,
    runtime: SandboxRuntime,
    options: AppOptions = {},
  ) {
    for (const dir of [config.storeDir, config.groupsDir, config.ipcDir, config.sessionsDir, config.proxyDir])
      fs.mkdirSync(dir, { recursive: true });
    const store = (this.store = openStore(config.dbPath));
    ensureMainGroup(store, config);
    // A folder edited into the database by hand is never created unless a plain name.
    for (const group of store.groups.all())
      if (isValidFolder(group.folder)) ensureGroupFolder(config, group);
      else logger.error({ jid: group.jid, folder: group.folder }, 'registered group has an invalid folder');
    this.limits = createGroupPolicy(config.configDir);
    this.snapshots = new Snapshots(config, store);

    this.channels = this.buildChannels(options.whatsapp);
    const rateLimiter = new RateLimiter();
    this.outbound = new Outbound({
      store,
      channels: () => this.channels,
      assistantName: config.assistantName,
      allowSend: (jid) => {
        const folder = store.groups.byJid(jid)?.folder;
        if (!folder) return true;
        const { outboundPerMinute, outboundBurst } = this.limits(folder);
        return rateLimiter.tryTake(folder, outboundPerMinute, outboundBurst);
      },
    });
    this.failures = new FailureNotices((jid, text) =>
      this.outbound.send(jid, text, undefined, { unlimited: true }),
    );

    this.proxies = new ProxyManager({
      proxyDir: config.proxyDir,
      configDir: config.configDir,
      readSecrets: () => readSecrets(config.envFile),
      recordUsage: (folder, input, output) => store.usage.add(folder, todayUtc(), input, output),
      tokensUsedToday: (folder) => store.usage.tokensFor(folder, todayUtc()),
      dailyTokenBudget: (folder) => this.limits(folder).dailyTokenBudget,
      onBudgetExceeded: (folder) => this.failures.onBudgetSpent(store.groups.byFolder(folder)?.jid),
      ...(hostIsRoot() && { sandboxUid: config.sandboxUid }),
      ...(options.modelUpstreamTimeoutMs && { upstreamIdleTimeoutMs: options.modelUpstreamTimeoutMs }),
    });
    this.runner = new SandboxRunner({
      config,
      runtime,
      allowlist: () => loadMountAllowlist(config.configDir),
      prepare: async (group, user) => {
        prepareAgentSkills(config, group.folder, hostIsRoot() ? user : undefined);
        await this.proxies.ensureGroup(group.folder);
      },
    });

    const send = (jid: string, text: string) => this.outbound.send(jid, text);
    this.loop = new MessageLoop({
      store,
      config,
      runner: this.runner,
      send,
      setTyping: (jid, on) => this.outbound.setTyping(jid, on),
      mayTrigger: (group, message) =>
        senderAllowed(this.limits(group.folder), message.sender, message.isFromMe),
      failures: this.failures,
    });
    this.scheduler = new TaskScheduler({
      store,
      config,
      queue: this.loop.queue,
      runTask: (task) =>
        runTaskInSandbox({ store, runner: this.runner, assistantName: config.assistantName, send }, task),
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
    });
    this.ipc = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: config.ipcPollMs,
      groups: () => store.groups.all(),
      handle: (kind, payload, source) => this.handleIpc(kind, payload, source),
    });
  }

  get queue() {
    return this.loop.queue;
  }

  /** Channel → store: only registered chats keep their content; others are known by name. */
  ingest(message: NewMessage): void {
    const group = this.store.groups.byJid(message.chatJid);
    if (!group) return;
    const limits = this.limits(group.folder);
    if (limits.senderAllowlist?.mode === 'drop' && !senderAllowed(limits, message.sender, message.isFromMe)) {
      const log = { group: group.folder, sender: message.sender };
      return logger.info(log, 'message from a sender not on the allowlist dropped');
    }
    if (this.store.messages.store(message) !== null) this.loop.notify();
  }

  private buildChannels(whatsapp: WhatsAppModule | undefined): Channel[] {
    const { config, store } = this;
    const callbacks: ChannelCallbacks = {
      onChatMetadata: (chat) => store.messages.upsertChat(chat),
      onMessage: (message) => this.ingest(message),
    };
    const local = new LocalChannel({
      port: config.localChannelPort,
      tokenFile: path.join(config.dataDir, 'local-channel.token'),
      callbacks,
      assistantName: config.assistantName,
      history: (jid, after) => store.messages.history(jid, after),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      chats: () => localChats(store),
      status: () => ({ usageToday: store.usage.forDay(todayUtc()) }),
    });
    if (!whatsapp) return [local];
    const wa = new whatsapp.WhatsAppChannel({
      authDir: config.authDir,
      ipcDir: config.ipcDir,
      mediaTmpDir: path.join(config.dataDir, 'tmp'),
      assistantName: config.assistantName,
      assistantHasOwnNumber: config.assistantHasOwnNumber,
      callbacks,
      registeredGroups: () => new Map(store.groups.all().map((g) => [g.jid, g])),
      onGroupsSynced: () => this.snapshots.groups(),
      syncState: store.state,
    });
    return [local, wa];
  }

  /** The group a file came from is the folder it was found in, never what the file claims. */
  private async handleIpc(kind: IpcKind, payload: unknown, source: RegisteredGroup) {
    if (kind === 'messages')
      return handleMessageIpc(payload, source, {
        groupByJid: (jid) => this.store.groups.byJid(jid),
        send: async (jid, text, sender) => {
          const outgoing = formatOutbound(text, sender);
          // What the agent said reached a chat: its messages count as answered.
          if (outgoing && (await this.outbound.send(jid, outgoing, sender)))
            this.loop.markAnswered(source.jid);
        },
      });
    return handleTaskIpc(payload, source, {
      store: this.store,
      config: this.config,
      scheduler: this.scheduler,
      maxActiveTasksPerGroup: this.limits(source.folder).maxActiveTasks,
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
      registerGroup: (group) => {
        const result = registerGroup(this.store, this.config, group);
        if (result.ok) {
          this.ipc.syncWatchers();
          this.snapshots.groups();
        }
        return result;
      },
      refreshGroups: () => this.refreshGroups(),
    });
  }

  async refreshGroups(): Promise<void> {
    for (const channel of this.channels) await channel.syncGroups?.(true).catch(() => undefined);
    this.snapshots.groups();
  }

  async start(): Promise<void> {
    for (const channel of this.channels)
      await channel
        .connect()
        .catch((err: unknown) => logger.error({ channel: channel.name, err }, 'channel failed to connect'));
    this.snapshots.tasks();
    this.snapshots.groups();
    this.ipc.start();
    this.scheduler.start();
    this.loop.start();
  }

  /** Runs cut short leave their messages behind the cursor for the next start. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.failures.mute();
    this.loop.stop();
    this.scheduler.stop();
    if (!(await this.queue.shutdown(this.config.shutdownGraceMs))) {
      await this.runner.stopAll();
      if (!(await this.queue.whenIdle(this.config.shutdownGraceMs)))
        logger.error('runs still active after their sandboxes were stopped');
    }
    this.ipc.stop();
    for (const channel of this.channels) await channel.disconnect().catch(() => undefined);
    await this.proxies.stop();
    this.store.close();
  }
}

/** The local page's chat list: registered local chats, then the others seen. */
function localChats(store: Store) {
  const rows = store.groups
    .all()
    .filter((g) => g.jid.startsWith('local:'))
    .map(({ jid, name, isMain }) => ({ jid, name, registered: true, isMain, lastMessageTime: '' }));
  for (const { jid, name, channel, lastMessageTime } of store.messages.listChats())
    if (channel === 'local' && !rows.some((r) => r.jid === jid))
      rows.push({ jid, name: name || jid, registered: false, isMain: false, lastMessageTime });
  return rows;
}
