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
const loadWhatsApp = () => import('./channels/whatsapp/whatsapp-channel.js');

export interface AppOptions {
  modelUpstreamTimeoutMs?: number;
  whatsapp?: WhatsAppModule;
  warmAhead?: WarmAheadOptions;
  /** Tests: a fake Baileys socket for linking and for the channel. */
  makeWhatsAppSocket?: MakeSocket;
}

/** The host, every part built once in dependency order. */
export class App {
  readonly store: Store;
  readonly limits: (folder: string) => ResolvedLimits;
  readonly snapshots: Snapshots;
  readonly proxies: ProxyManager;
  readonly runner: SandboxRunner;
  readonly whatsappLink: WhatsAppLink;
  readonly control: HostControl;
  readonly channels: Channel[];
  readonly health: ChannelHealth;
  readonly outbound: Outbound;
  readonly failures: FailureNotices;
  readonly loop: MessageLoop;
  readonly warm: WarmAhead;
  readonly scheduler: TaskScheduler;
  readonly ipc: IpcWatcher;
  private readonly callbacks: ChannelCallbacks = {
    onChatMetadata: (chat) => this.store.messages.upsertChat(chat),
    onMessage: (message) => this.ingest(message),
  };
  private stopping = false;

  static async create(config: Config, runtime: SandboxRuntime, options: AppOptions = {}): Promise<App> {
    const linked = isWhatsAppLinked(config.authDir);
    if (!linked) logger.info('WhatsApp is not linked; run `nanoclaw whatsapp-auth` to link it');
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

    const notice = (jid: string, text: string) => void this.outbound.enqueue(jid, text, { kind: 'notice' });
    const setTyping = (jid: string, on: boolean) => this.outbound.setTyping(jid, on);
    const onTasksChanged = (folder: string) => this.snapshots.tasks(folder);
    this.whatsappLink = this.buildWhatsAppLink();
    this.control = hostControl({
      config,
      store,
      runner: this.runner,
      whatsapp: this.whatsappLink,
      notice,
      setTyping,
      onTasksChanged,
      onTyping: (jid) => this.warm.onTyping(jid),
    });
    this.channels = [this.localChannel(runtime.kind)];
    if (options.whatsapp) this.channels.push(this.whatsAppChannel(options.whatsapp));
    this.health = new ChannelHealth({ state: store.state, notify: (text) => notice('local:main', text) });
    this.outbound = new Outbound({
      store,
      channels: () => this.channels,
      assistantName: config.assistantName,
      pacing: (jid) => {
        const folder = store.groups.byJid(jid)?.folder;
        if (!folder) return undefined;
        const { outboundPerMinute, outboundBurst } = limits(folder);
        return { key: folder, perMinute: outboundPerMinute, burst: outboundBurst };
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

    // A run's result is its answer: paced behind the agent's own messages, never refused.
    const send = async (jid: string, text: string) =>
      this.outbound.enqueue(jid, text, { kind: 'answer', sourceFolder: store.groups.byJid(jid)?.folder }).ok;
    const runner = this.runner;
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
    const { queue } = this.loop;
    this.warm = new WarmAhead(
      {
        store,
        config,
        runner,
        queue,
        runWarm: (jid) => this.loop.runWarm(jid),
        blocked: (jid) => this.failures.isBlocked(jid),
        send,
      },
      options.warmAhead ?? config.warmAhead,
    );
    const { assistantName } = config;
    this.scheduler = new TaskScheduler({
      store,
      config,
      queue,
      runTask: (task) => runTaskInSandbox({ store, runner, assistantName, send }, task),
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
      return logger.info(
        { group: group.folder, sender: message.sender },
        'message from a sender not on the allowlist dropped',
      );
    if (this.store.messages.store(message) !== null) this.loop.notify();
  }

  private localChannel(runtime: string): Channel {
    const { config, store } = this;
    return new LocalChannel({
      port: config.localChannelPort,
      tokenFile: path.join(config.dataDir, 'local-channel.token'),
      callbacks: this.callbacks,
      assistantName: config.assistantName,
      history: (jid, after, limit, before) => store.messages.history(jid, after, limit, before),
      isRegistered: (jid) => store.groups.byJid(jid) !== undefined,
      chats: () => localChats(store),
      status: () => ({
        runtime,
        running: store.groups
          .all()
          .filter((g) => this.queue.isActive(g.jid))
          .map((g) => g.name),
        usageToday: store.usage.forDay(todayUtc()),
      }),
      control: this.control,
      files: {
        ipcDir: config.ipcDir,
        filesDir: config.filesDir,
        tmpDir: config.tmpDir,
        folderOf: (jid) => store.groups.byJid(jid)?.folder,
      },
    });
  }

  private whatsAppChannel(whatsapp: WhatsAppModule): Channel {
    const { config, store } = this;
    return new whatsapp.WhatsAppChannel({
      authDir: config.authDir,
      ipcDir: config.ipcDir,
      mediaTmpDir: config.tmpDir,
      filesDir: config.filesDir,
      assistantName: config.assistantName,
      assistantHasOwnNumber: config.assistantHasOwnNumber,
      callbacks: this.callbacks,
      registeredGroups: () => new Map(store.groups.all().map((g) => [g.jid, g])),
      onGroupsSynced: () => this.snapshots.groups(),
      syncState: store.state,
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
        if (this.channels.some((c) => c.name === 'whatsapp')) return;
        const channel = this.whatsAppChannel(await loadWhatsApp());
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
        const result = this.register({ jid, name, folder });
        return result.ok ? { ok: true, folder: result.group.folder } : result;
      },
    });
  }

  /** The group a file came from is the folder it was found in, never what the file claims. */
  private async handleIpc(kind: IpcKind, payload: unknown, source: RegisteredGroup) {
    const { store, config } = this;
    if (kind === 'messages')
      return handleMessageIpc(payload, source, {
        groupByJid: (jid) => store.groups.byJid(jid),
        files: { groupsDir: config.groupsDir, filesDir: config.filesDir },
        send: (jid, text, sender) => {
          const outgoing = formatOutbound(text, sender);
          if (!outgoing) return { ok: true };
          const sent = this.outbound.enqueue(jid, outgoing, {
            kind: 'agent',
            sourceFolder: source.folder,
            sender,
          });
          // What the agent said is queued durably: its messages count as answered.
          if (sent.ok) this.loop.markAnswered(source.jid);
          return sent;
        },
      });
    return handleTaskIpc(payload, source, {
      store,
      config,
      scheduler: this.scheduler,
      maxActiveTasksPerGroup: this.limits(source.folder).maxActiveTasks,
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
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

  /** Runs cut short leave their messages behind the cursor for the next start. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.failures.mute();
    this.loop.stop();
    this.scheduler.stop();
    const grace = this.config.shutdownGraceMs;
    if (!(await this.queue.shutdown(grace))) {
      await this.runner.stopAll();
      if (!(await this.queue.whenIdle(grace)))
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
