import fs from 'node:fs';
import path from 'node:path';
import { runTaskInSandbox } from './agent-dispatch.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import { openStore, type Store } from './db/store.js';
import { readSecrets } from './env-file.js';
import { FailureNotices } from './failure-notice.js';
import { ensureGroupFolder, ensureMainGroup, registerGroup } from './groups.js';
import type { HostControl } from './channels/control.js';
import { LocalChannel } from './channels/local/local-channel.js';
import { isWhatsAppLinked } from './channels/whatsapp/link-state.js';
import { WhatsAppLink } from './channels/whatsapp/linker.js';
import type { MakeSocket } from './channels/whatsapp/socket.js';
import { hostControl, localChats } from './host-control.js';
import { handleMessageIpc } from './ipc/message-handler.js';
import { handleTaskIpc } from './ipc/task-handler.js';
import { IpcWatcher, type IpcKind } from './ipc/watcher.js';
import { logger } from './logger.js';
import { MessageLoop } from './message-loop.js';
import { Outbound } from './outbound.js';
import { ChannelHealth } from './channel-health.js';
import { createGroupPolicy, senderAllowed, type ResolvedLimits } from './policy/group-policy.js';
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
import { WarmAhead, type WarmAheadOptions } from './warm-ahead.js';

type WhatsAppModule = typeof import('./channels/whatsapp/whatsapp-channel.js');

export interface AppOptions {
  modelUpstreamTimeoutMs?: number;
  whatsapp?: WhatsAppModule;
  /** Off unless given. */
  warmAhead?: WarmAheadOptions;
  /** Tests: a fake Baileys socket for linking and for the channel. */
  makeWhatsAppSocket?: MakeSocket;
}

/** The host, every part built once in dependency order. */
export class App {
  readonly store: Store;
  readonly limits: (folder: string) => ResolvedLimits;
  readonly proxies: ProxyManager;
  readonly runner: SandboxRunner;
  readonly channels: Channel[];
  readonly outbound: Outbound;
  readonly health: ChannelHealth;
  readonly failures: FailureNotices;
  readonly loop: MessageLoop;
  readonly scheduler: TaskScheduler;
  readonly warm: WarmAhead;
  readonly snapshots: Snapshots;
  readonly ipc: IpcWatcher;
  readonly whatsappLink: WhatsAppLink;
  readonly control: HostControl;
  private readonly runtimeKind: string;
  private readonly makeWhatsAppSocket: MakeSocket | undefined;
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

    this.runtimeKind = runtime.kind;
    this.makeWhatsAppSocket = options.makeWhatsAppSocket;
    this.whatsappLink = this.buildWhatsAppLink();
    this.health = new ChannelHealth({
      state: store.state,
      notify: (text) => void this.outbound.enqueue('local:main', text, { kind: 'notice' }),
    });
    this.channels = this.buildChannels(options.whatsapp);
    this.outbound = new Outbound({
      store,
      channels: () => this.channels,
      assistantName: config.assistantName,
      pacing: (jid) => {
        const folder = store.groups.byJid(jid)?.folder;
        if (!folder) return undefined;
        const { outboundPerMinute: perMinute, outboundBurst: burst } = this.limits(folder);
        return { key: folder, perMinute, burst };
      },
      maxMessagesPerRun: config.maxMessagesPerRun,
      answerMaxWaitMs: config.answerMaxWaitMs,
    });
    this.failures = new FailureNotices({
      send: (jid, text) => this.outbound.send(jid, text, undefined, { unlimited: true }),
      precheck: ['no-credentials', 'invalid-credentials', 'budget-spent'],
      holds: async (cause, folder) => this.proxies.holds(cause, folder) ?? this.runner.holds(cause),
      resume: (jid) => this.queue.enqueueMessageCheck(jid),
    });

    this.proxies = new ProxyManager({
      proxyDir: config.proxyDir,
      configDir: config.configDir,
      readSecrets: () => readSecrets(config.envFile),
      recordUsage: (folder, input, output) => store.usage.add(folder, todayUtc(), input, output),
      tokensUsedToday: (folder) => store.usage.tokensFor(folder, todayUtc()),
      dailyTokenBudget: (folder) => this.limits(folder).dailyTokenBudget,
      ...(hostIsRoot() && { sandboxUid: config.sandboxUid }),
      ...(options.modelUpstreamTimeoutMs && { upstreamIdleTimeoutMs: options.modelUpstreamTimeoutMs }),
    });
    this.runner = new SandboxRunner({
      config,
      runtime,
      allowlist: () => loadMountAllowlist(config.configDir),
      modelFailure: (folder, since) => this.proxies.lastFailure(folder, since),
      prepare: async (group, user) => {
        prepareAgentSkills(config, group.folder, hostIsRoot() ? user : undefined);
        this.outbound.newRun(group.folder);
        await this.proxies.ensureGroup(group.folder);
      },
    });

    // A run's result is its answer: paced behind the agent's own messages, never refused.
    const send = async (jid: string, text: string) =>
      this.outbound.enqueue(jid, text, { kind: 'answer', sourceFolder: store.groups.byJid(jid)?.folder }).ok;
    this.loop = new MessageLoop({
      store,
      config,
      runner: this.runner,
      send,
      setTyping: (jid, on) => this.outbound.setTyping(jid, on),
      mayTrigger: (group, message) =>
        senderAllowed(this.limits(group.folder), message.sender, message.isFromMe),
      failures: this.failures,
      onUntriggered: (jid) => this.warm.onUntriggered(jid),
    });
    this.warm = new WarmAhead(
      {
        store,
        config,
        runner: this.runner,
        queue: this.loop.queue,
        runWarm: (jid) => this.loop.runWarm(jid),
        blocked: (jid) => this.failures.isBlocked(jid),
        send,
      },
      options.warmAhead ?? config.warmAhead,
    );
    this.scheduler = new TaskScheduler({
      store,
      config,
      queue: this.loop.queue,
      runTask: (task) =>
        runTaskInSandbox({ store, runner: this.runner, assistantName: config.assistantName, send }, task),
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
      warm: this.warm,
    });
    this.ipc = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: config.ipcPollMs,
      groups: () => store.groups.all(),
      handle: (kind, payload, source) => this.handleIpc(kind, payload, source),
    });
    this.control = hostControl({
      config,
      store,
      runner: this.runner,
      whatsapp: this.whatsappLink,
      notice: (jid, text) => void this.outbound.send(jid, text, undefined, { unlimited: true }),
      setTyping: (jid, on) => this.outbound.setTyping(jid, on),
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
      onTyping: (jid) => this.warm.onTyping(jid),
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
      history: (jid, after, limit, before) => store.messages.history(jid, after, limit, before),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      chats: () => localChats(store),
      status: () => ({
        runtime: this.runtimeKind,
        running: store.groups
          .all()
          .filter((g) => this.queue.isActive(g.jid))
          .map((g) => g.name),
        usageToday: store.usage.forDay(todayUtc()),
      }),
      control: {
        stopChat: (jid) => this.control.stopChat(jid),
        tasks: (jid) => this.control.tasks(jid),
        taskAction: (jid, id, action) => this.control.taskAction(jid, id, action),
        typing: (jid) => this.control.typing(jid),
        whatsapp: this.whatsappLink,
      },
      files: {
        ipcDir: config.ipcDir,
        filesDir: path.join(config.dataDir, 'files'),
        tmpDir: path.join(config.dataDir, 'tmp'),
        folderOf: (jid) => store.groups.byJid(jid)?.folder,
      },
    });
    return whatsapp ? [local, this.whatsAppChannel(whatsapp, callbacks)] : [local];
  }

  private whatsAppChannel(whatsapp: WhatsAppModule, callbacks: ChannelCallbacks): Channel {
    const { config, store } = this;
    return new whatsapp.WhatsAppChannel({
      authDir: config.authDir,
      ipcDir: config.ipcDir,
      mediaTmpDir: path.join(config.dataDir, 'tmp'),
      filesDir: path.join(config.dataDir, 'files'),
      assistantName: config.assistantName,
      assistantHasOwnNumber: config.assistantHasOwnNumber,
      callbacks,
      registeredGroups: () => new Map(store.groups.all().map((g) => [g.jid, g])),
      onGroupsSynced: () => this.snapshots.groups(),
      syncState: store.state,
      onHealth: (state) => {
        this.health.report('whatsapp', state);
        if (state === 'logged-out') void this.whatsappLink.loggedOut();
      },
      onTyping: (jid) => this.control.typing(jid),
      ...(this.makeWhatsAppSocket && { makeSocket: this.makeWhatsAppSocket }),
    });
  }

  /** Linking from the page: the self-chat becomes a main chat and the channel starts at once. */
  private buildWhatsAppLink(): WhatsAppLink {
    const { config, store } = this;
    const register = (group: Parameters<typeof registerGroup>[2]) => {
      const result = registerGroup(store, config, group);
      if (result.ok) {
        this.ipc.syncWatchers();
        this.snapshots.groups();
      }
      return result;
    };
    const folderTaken = (f: string) =>
      !!store.groups.byFolder(f) || fs.existsSync(path.join(config.groupsDir, f));
    return new WhatsAppLink({
      authDir: config.authDir,
      ...(this.makeWhatsAppSocket && { makeSocket: this.makeWhatsAppSocket }),
      onLinked: async (selfJid) => {
        let folder = 'main-whatsapp';
        for (let n = 2; folderTaken(folder) && store.groups.byFolder(folder)?.jid !== selfJid; n++)
          folder = `main-whatsapp-${n}`;
        const result = register({
          jid: selfJid,
          name: 'WhatsApp (you)',
          folder,
          requiresTrigger: false,
          isMain: true,
        });
        if (!result.ok)
          logger.error({ selfJid, error: result.error }, 'cannot register the WhatsApp self-chat');
        if (this.channels.some((c) => c.name === 'whatsapp')) return;
        const channel = this.whatsAppChannel(await import('./channels/whatsapp/whatsapp-channel.js'), {
          onChatMetadata: (chat) => store.messages.upsertChat(chat),
          onMessage: (message) => this.ingest(message),
        });
        this.channels.push(channel);
        await channel.connect();
      },
      onUnlinked: async () => {
        const i = this.channels.findIndex((c) => c.name === 'whatsapp');
        if (i >= 0) await this.channels.splice(i, 1)[0]!.disconnect();
      },
      knownGroups: () =>
        store.messages
          .listChats()
          .filter((c) => c.channel === 'whatsapp' && c.isGroup)
          .map(({ jid, name }) => ({ jid, name: name || jid })),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      folderTaken,
      registerGroup: async (jid, name, folder) => {
        const result = register({ jid, name, folder });
        return result.ok ? { ok: true, folder: result.group.folder } : { ok: false, error: result.error };
      },
    });
  }

  /** The group a file came from is the folder it was found in, never what the file claims. */
  private async handleIpc(kind: IpcKind, payload: unknown, source: RegisteredGroup) {
    if (kind === 'messages')
      return handleMessageIpc(payload, source, {
        groupByJid: (jid) => this.store.groups.byJid(jid),
        files: { groupsDir: this.config.groupsDir, filesDir: path.join(this.config.dataDir, 'files') },
        send: async (jid, text, sender) => {
          const outgoing = formatOutbound(text, sender);
          if (!outgoing) return { ok: true };
          const opts = { kind: 'agent' as const, sourceFolder: source.folder, ...(sender && { sender }) };
          const sent = this.outbound.enqueue(jid, outgoing, opts);
          if (!sent.ok) return sent;
          // What the agent said is queued durably: its messages count as answered.
          this.loop.markAnswered(source.jid);
          return { ok: true };
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
    this.outbound.start();
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
    await this.outbound.stop();
    this.health.stop();
    for (const channel of this.channels) await channel.disconnect().catch(() => undefined);
    await this.proxies.stop();
    this.store.close();
  }
}
