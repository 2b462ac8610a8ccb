import fs from 'node:fs';
import path from 'node:path';
import { runTaskInSandbox } from './agent-dispatch.js';
import { ChannelHealth } from './channel-health.js';
import type { HostControl } from './channels/control.js';
import { LocalChannel } from './channels/local/local-channel.js';
import { isWhatsAppLinked } from './channels/whatsapp/link-state.js';
import { WhatsAppLink } from './channels/whatsapp/linker.js';
import type { MakeSocket } from './channels/whatsapp/socket.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import { openStore, type Store } from './db/store.js';
import { readSecrets } from './env-file.js';
import { FailureNotices } from './failure-notice.js';
import { ensureGroupFolder, ensureMainGroup, registerGroup, type GroupRegistration } from './groups.js';
import { hostControl, localChats } from './host-control.js';
import { handleMessageIpc } from './ipc/message-handler.js';
import { handleTaskIpc } from './ipc/task-handler.js';
import { IpcWatcher, type IpcKind } from './ipc/watcher.js';
import { logger } from './logger.js';
import { MessageLoop } from './message-loop.js';
import { Outbound } from './outbound.js';
import { createGroupPolicy, senderAllowed } from './policy/group-policy.js';
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
const loadWhatsApp = () => import('./channels/whatsapp/whatsapp-channel.js');

export interface AppOptions {
  modelUpstreamTimeoutMs?: number;
  whatsapp?: WhatsAppModule;
  warmAhead?: WarmAheadOptions;
  makeWhatsAppSocket?: MakeSocket;
}

export class App {
  readonly store: Store;
  readonly snapshots: Snapshots;
  readonly runner: SandboxRunner;
  readonly control: HostControl;
  readonly channels: Channel[];
  readonly outbound: Outbound;
  readonly warm: WarmAhead;
  readonly scheduler: TaskScheduler;
  readonly ipc: IpcWatcher;
  private readonly limits;
  private readonly proxies: ProxyManager;
  private readonly whatsappLink: WhatsAppLink;
  private readonly health: ChannelHealth;
  private readonly failures: FailureNotices;
  private readonly loop: MessageLoop;
  private readonly callbacks: ChannelCallbacks = {
    onChatMetadata: (chat) => this.store.messages.upsertChat(chat),
    onMessage: (message) => this.ingest(message),
  };
  private stopping = false;
  private readonly folderOf = (jid: string) => this.store.groups.byJid(jid)?.folder;

  static async create(config: Config, runtime: SandboxRuntime, options: AppOptions = {}): Promise<App> {
    const linked = isWhatsAppLinked(config.authDir);
    return new App(config, runtime, { ...options, ...(linked && { whatsapp: await loadWhatsApp() }) });
  }

  constructor(
    readonly config: Config,
    runtime: SandboxRuntime,
    private readonly options: AppOptions = {},
  ) {
    for (const dir of [config.storeDir, config.groupsDir, config.ipcDir, config.sessionsDir, config.proxyDir])
      fs.mkdirSync(dir, { recursive: true });
    const store = (this.store = openStore(config.dbPath));
    ensureMainGroup(store, config);
    // A folder edited into the database by hand is never created unless a plain name.
    for (const group of store.groups.all())
      if (isValidFolder(group.folder)) ensureGroupFolder(config, group);
      else logger.error({ jid: group.jid, folder: group.folder }, 'registered group has an invalid folder');
    const limits = (this.limits = createGroupPolicy(config.configDir));
    this.snapshots = new Snapshots(config, store);
    const { folderOf } = this;

    this.proxies = new ProxyManager({
      proxyDir: config.proxyDir,
      configDir: config.configDir,
      readSecrets: () => readSecrets(config.envFile),
      recordUsage: (folder, input, output) => store.usage.add(folder, todayUtc(), input, output),
      tokensUsedToday: (folder) => store.usage.tokensFor(folder, todayUtc()),
      dailyTokenBudget: (folder) => limits(folder).dailyTokenBudget,
      ...(hostIsRoot() && { sandboxUid: config.sandboxUid }),
      ...(options.modelUpstreamTimeoutMs && { upstreamIdleTimeoutMs: options.modelUpstreamTimeoutMs }),
    });
    const runner = (this.runner = new SandboxRunner({
      config,
      runtime,
      allowlist: () => loadMountAllowlist(config.configDir),
      modelFailure: (folder, since) => this.proxies.lastFailure(folder, since),
      prepare: async (group, user) => {
        prepareAgentSkills(config, group.folder, hostIsRoot() ? user : undefined);
        this.outbound.newRun(group.folder);
        await this.proxies.ensureGroup(group.folder);
      },
    }));

    const notice = (jid: string, text: string) => void this.outbound.enqueue(jid, text, { kind: 'notice' });
    const setTyping = (jid: string, on: boolean) => this.outbound.setTyping(jid, on);
    const onTasksChanged = (folder: string) => this.snapshots.tasks(folder);
    this.whatsappLink = this.buildWhatsAppLink();
    this.control = hostControl({
      ...{ config, store, runner, notice, setTyping },
      whatsapp: this.whatsappLink,
      onTasksChanged: (folder) => (this.scheduler.reschedule(), onTasksChanged(folder)),
      onTyping: (jid) => this.warm.onTyping(jid),
    });
    this.channels = [this.localChannel()];
    if (options.whatsapp) this.channels.push(this.whatsAppChannel(options.whatsapp));
    this.health = new ChannelHealth({ state: store.state, notify: (text) => notice('local:main', text) });
    this.outbound = new Outbound({
      store,
      channels: () => this.channels,
      assistantName: config.assistantName,
      pacing: (jid) => {
        const folder = folderOf(jid);
        const l = folder && limits(folder);
        return l ? { key: folder, perMinute: l.outboundPerMinute, burst: l.outboundBurst } : undefined;
      },
      maxMessagesPerRun: config.maxMessagesPerRun,
      answerMaxWaitMs: config.answerMaxWaitMs,
    });
    this.failures = new FailureNotices({
      send: async (jid, text) => notice(jid, text),
      precheck: ['no-credentials', 'invalid-credentials', 'budget-spent'],
      holds: async (cause, folder) => this.proxies.holds(cause, folder) ?? this.runner.holds(cause),
      resume: (jid) => this.queue.enqueueMessageCheck(jid),
    });

    const send = async (jid: string, text: string) =>
      this.outbound.enqueue(jid, text, { kind: 'answer', sourceFolder: folderOf(jid) }).ok;
    this.loop = new MessageLoop({
      store,
      config,
      runner,
      send,
      setTyping,
      mayTrigger: (group, m) => senderAllowed(limits(group.folder), m.sender, m.isFromMe),
      failures: this.failures,
      onUntriggered: (jid) => this.warm.onUntriggered(jid),
    });
    const { queue, runWarm } = this.loop;
    const blocked = this.failures.isBlocked;
    this.warm = new WarmAhead(
      { store, config, runner, queue, runWarm, blocked, send },
      options.warmAhead ?? config.warmAhead,
    );
    this.scheduler = new TaskScheduler({
      store,
      config,
      queue,
      runTask: (task) => runTaskInSandbox({ store, runner, assistantName: config.assistantName, send }, task),
      onTasksChanged,
      warm: this.warm,
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
    if (limits.senderAllowlist?.mode === 'drop' && !senderAllowed(limits, message.sender, message.isFromMe))
      return;
    if (this.store.messages.store(message) !== null) this.loop.notify();
  }

  private localChannel(): Channel {
    const { config, store } = this;
    return new LocalChannel({
      port: config.localChannelPort,
      tokenFile: path.join(config.dataDir, 'local-channel.token'),
      callbacks: this.callbacks,
      assistantName: config.assistantName,
      history: (jid, after, limit, before) => store.messages.history(jid, after, limit, before),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      chats: () => localChats(store),
      status: () => ({ usageToday: store.usage.forDay(todayUtc()) }),
      control: this.control,
      files: { ...config, folderOf: this.folderOf },
    });
  }

  private whatsAppChannel(whatsapp: WhatsAppModule): Channel {
    const { config, store } = this;
    return new whatsapp.WhatsAppChannel({
      ...config,
      callbacks: this.callbacks,
      registeredGroups: () => new Map(store.groups.all().map((g) => [g.jid, g])),
      onGroupsSynced: () => this.snapshots.groups(),
      onHealth: (state) => {
        this.health.report('whatsapp', state);
        if (state === 'logged-out') void this.whatsappLink.loggedOut();
      },
      onTyping: (jid) => this.control.typing(jid),
      ...(this.options.makeWhatsAppSocket && { makeSocket: this.options.makeWhatsAppSocket }),
    });
  }

  private register(group: GroupRegistration) {
    const result = registerGroup(this.store, this.config, group);
    if (result.ok) {
      this.ipc.syncWatchers();
      this.snapshots.groups();
    }
    return result;
  }

  private buildWhatsAppLink(): WhatsAppLink {
    const { config, store } = this;
    const folderTaken = (f: string) =>
      !!store.groups.byFolder(f) || fs.existsSync(path.join(config.groupsDir, f));
    const whatsapp = () => this.channels.findIndex((c) => c.name === 'whatsapp');
    return new WhatsAppLink({
      authDir: config.authDir,
      ...(this.options.makeWhatsAppSocket && { makeSocket: this.options.makeWhatsAppSocket }),
      onLinked: async (jid) => {
        let folder = 'main-whatsapp';
        for (let n = 2; folderTaken(folder) && store.groups.byFolder(folder)?.jid !== jid; n++)
          folder = `main-whatsapp-${n}`;
        const result = this.register({
          jid,
          name: 'WhatsApp (you)',
          folder,
          requiresTrigger: false,
          isMain: true,
        });
        if (!result.ok) logger.error({ jid, error: result.error }, 'cannot register the WhatsApp self-chat');
        if (whatsapp() >= 0) return;
        const channel = this.whatsAppChannel(await loadWhatsApp());
        this.channels.push(channel);
        await channel.connect();
      },
      onUnlinked: async () => {
        if (whatsapp() >= 0) await this.channels.splice(whatsapp(), 1)[0]!.disconnect();
      },
      knownGroups: () =>
        store.messages
          .listChats()
          .filter((c) => c.channel === 'whatsapp' && c.isGroup)
          .map(({ jid, name }) => ({ jid, name: name || jid })),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      folderTaken,
      registerGroup: async (jid, name, folder) => {
        const result = this.register({ jid, name, folder });
        return result.ok ? { ok: true, folder } : result;
      },
    });
  }

  /** The group a file came from is the folder it was found in, never what the file claims. */
  private async handleIpc(kind: IpcKind, payload: unknown, source: RegisteredGroup) {
    const { store, config } = this;
    if (kind === 'messages')
      return handleMessageIpc(payload, source, {
        groupByJid: (jid) => store.groups.byJid(jid),
        files: config,
        send: (jid, text, sender) => {
          const outgoing = formatOutbound(text, sender);
          const sent = outgoing
            ? this.outbound.enqueue(jid, outgoing, { kind: 'agent', sourceFolder: source.folder, sender })
            : { ok: true as const };
          if (outgoing && sent.ok) this.loop.markAnswered(source.jid);
          return sent;
        },
      });
    return handleTaskIpc(payload, source, {
      store,
      config,
      maxActiveTasksPerGroup: this.limits(source.folder).maxActiveTasks,
      onTasksChanged: (folder) => (this.scheduler.reschedule(), this.snapshots.tasks(folder)),
      registerGroup: (group) => this.register(group),
      refreshGroups: async () => {
        for (const channel of this.channels) await channel.syncGroups?.(true).catch(() => undefined);
        this.snapshots.groups();
      },
    });
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

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.failures.mute();
    this.loop.stop();
    this.scheduler.stop();
    const grace = this.config.shutdownGraceMs;
    if (!(await this.queue.shutdown(grace))) {
      await this.runner.stopAll();
      await this.queue.whenIdle(grace);
    }
    this.ipc.stop();
    await this.outbound.stop();
    this.health.stop();
    for (const channel of this.channels) await channel.disconnect().catch(() => undefined);
    await this.proxies.stop();
    this.store.close();
  }
}
