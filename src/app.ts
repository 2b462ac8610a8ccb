import fs from 'node:fs';
import path from 'node:path';
import { runTaskInSandbox } from './agent-dispatch.js';
import { ChannelHealth } from './channel-health.js';
import { LocalChannel } from './channels/local/local-channel.js';
import { isWhatsAppLinked } from './channels/whatsapp/link-state.js';
import { folderFor, WhatsAppLink } from './channels/whatsapp/linker.js';
import type { MakeSocket } from './channels/whatsapp/socket.js';
import type { Config } from './config.js';
import { isValidFolder } from './contract/ipc.js';
import { openStore } from './db/store.js';
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

export type AppOptions = {
  modelUpstreamTimeoutMs?: number;
  warmAhead?: WarmAheadOptions;
  makeWhatsAppSocket?: MakeSocket;
};

export class App {
  readonly store;
  readonly snapshots;
  readonly runner;
  readonly control;
  readonly channels: Channel[];
  readonly outbound;
  readonly warm;
  readonly scheduler;
  readonly ipc;
  private readonly limits;
  private readonly proxies;
  private readonly whatsappLink;
  private readonly health;
  private readonly failures;
  private readonly loop;
  private readonly callbacks: ChannelCallbacks = {
    onChatMetadata: (chat) => this.store.messages.upsertChat(chat),
    onMessage: (message) => this.ingest(message),
  };
  private stopping = false;
  private readonly folderOf = (jid: string) => this.store.groups.byJid(jid)?.folder;

  static async create(config: Config, runtime: SandboxRuntime, options: AppOptions = {}) {
    const app = new App(config, runtime, options);
    if (isWhatsAppLinked(config.authDir)) await app.addWhatsApp();
    return app;
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
    for (const group of store.groups.all())
      if (isValidFolder(group.folder)) ensureGroupFolder(config, group);
      else logger.error({ jid: group.jid, folder: group.folder }, 'registered group has an invalid folder');
    const limits = (this.limits = createGroupPolicy(config.configDir));
    this.snapshots = new Snapshots(config, store);
    const { folderOf } = this;

    this.proxies = new ProxyManager({
      ...config,
      sandboxUid: hostIsRoot() ? config.sandboxUid : undefined,
      upstreamIdleTimeoutMs: options.modelUpstreamTimeoutMs,
      readSecrets: () => readSecrets(config.envFile),
      recordUsage: (folder, input, output) => store.usage.add(folder, todayUtc(), input, output),
      tokensUsedToday: (folder) => store.usage.tokensFor(folder, todayUtc()),
      dailyTokenBudget: (folder) => limits(folder).dailyTokenBudget,
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
    this.whatsappLink = this.buildWhatsAppLink();
    this.control = hostControl({
      ...{ config, store, runner, notice, setTyping, onTasksChanged: this.tasksChanged },
      whatsapp: this.whatsappLink,
      onTyping: (jid) => this.warm.onTyping(jid),
    });
    this.channels = [
      new LocalChannel({
        ...config,
        port: config.localChannelPort,
        tokenFile: path.join(config.dataDir, 'local-channel.token'),
        callbacks: this.callbacks,
        history: (...args) => store.messages.history(...args),
        isRegistered: (jid) => !!store.groups.byJid(jid),
        chats: () => localChats(store),
        status: () => ({
          running: store.groups.all().flatMap((g) => (this.queue.isActive(g.jid) ? [g.name] : [])),
          usageToday: store.usage.forDay(todayUtc()),
        }),
        control: this.control,
        files: { ...config, folderOf },
      }),
    ];
    this.health = new ChannelHealth({ state: store.state, notify: (text) => notice('local:main', text) });
    this.outbound = new Outbound({
      ...config,
      store,
      channels: () => this.channels,
      pacing: (jid) => {
        const folder = folderOf(jid);
        const l = folder && limits(folder);
        return l ? { key: folder, perMinute: l.outboundPerMinute, burst: l.outboundBurst } : undefined;
      },
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
      ...{ store, config, runner, send, setTyping, failures: this.failures },
      mayTrigger: (group, m) => senderAllowed(limits(group.folder), m.sender, m.isFromMe),
      onUntriggered: (jid) => this.warm.onUntriggered(jid),
    });
    const { queue, runWarm } = this.loop;
    const blocked = this.failures.isBlocked;
    this.warm = new WarmAhead(
      { store, config, runner, queue, runWarm, blocked, send },
      options.warmAhead ?? config.warmAhead,
    );
    this.scheduler = new TaskScheduler({
      ...{ store, config, queue, warm: this.warm },
      runTask: (task) => runTaskInSandbox({ ...config, store, runner, send }, task),
      onTasksChanged: (folder) => this.snapshots.tasks(folder),
    });
    this.ipc = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: config.ipcPollMs,
      groups: () => store.groups.all(),
      handle: (...args) => this.handleIpc(...args),
    });
  }

  get queue() {
    return this.loop.queue;
  }

  private readonly tasksChanged = (folder: string) => {
    this.scheduler.reschedule();
    this.snapshots.tasks(folder);
  };

  /** Channel → store: only registered chats keep their content; others are known by name. */
  ingest(message: NewMessage) {
    const group = this.store.groups.byJid(message.chatJid);
    if (!group) return;
    const limits = this.limits(group.folder);
    if (limits.senderAllowlist?.mode === 'drop' && !senderAllowed(limits, message.sender, message.isFromMe))
      return;
    if (this.store.messages.store(message) !== null) this.loop.notify();
  }

  /** Baileys loads only when WhatsApp is linked. */
  private async addWhatsApp() {
    const { WhatsAppChannel } = await import('./channels/whatsapp/whatsapp-channel.js');
    const channel = new WhatsAppChannel({
      ...this.config,
      callbacks: this.callbacks,
      registeredGroups: () => new Map(this.store.groups.all().map((g) => [g.jid, g])),
      onGroupsSynced: () => this.snapshots.groups(),
      onHealth: (state) => {
        this.health.report(state);
        if (state === 'logged-out') void this.whatsappLink.loggedOut();
      },
      onTyping: (jid) => this.control.typing(jid),
      makeSocket: this.options.makeWhatsAppSocket,
    });
    this.channels.push(channel);
    return channel;
  }

  private register(group: GroupRegistration) {
    const result = registerGroup(this.store, this.config, group);
    if (result.ok) {
      this.ipc.syncWatchers();
      this.snapshots.groups();
    }
    return result;
  }

  private buildWhatsAppLink() {
    const { config, store } = this;
    const folderTaken = (f: string) =>
      !!store.groups.byFolder(f) || fs.existsSync(path.join(config.groupsDir, f));
    const whatsapp = () => this.channels.findIndex((c) => c.name === 'whatsapp');
    return new WhatsAppLink({
      authDir: config.authDir,
      makeSocket: this.options.makeWhatsAppSocket,
      onLinked: async (jid) => {
        const folder = store.groups.byJid(jid)?.folder ?? folderFor('main-whatsapp', folderTaken);
        const self = { jid, folder, name: 'WhatsApp (you)', isMain: true, requiresTrigger: false };
        const r = this.register(self);
        if (!r.ok) logger.error({ jid, error: r.error }, 'cannot register the WhatsApp self-chat');
        if (whatsapp() < 0) await (await this.addWhatsApp()).connect();
      },
      onUnlinked: async () => {
        if (whatsapp() >= 0) await this.channels.splice(whatsapp(), 1)[0]!.disconnect();
      },
      knownGroups: () =>
        store.messages
          .listChats()
          .filter((c) => c.channel === 'whatsapp' && c.isGroup)
          .map(({ jid, name }) => ({ jid, name: name || jid })),
      isRegistered: (jid) => !!store.groups.byJid(jid),
      folderTaken,
      registerGroup: async (jid, name, folder) => ({ ...this.register({ jid, name, folder }), folder }),
    });
  }

  /** The group a file came from is the folder it was found in, never what the file claims. */
  private async handleIpc(kind: IpcKind, payload: unknown, from: RegisteredGroup) {
    const { store, config } = this;
    if (kind === 'messages')
      return handleMessageIpc(payload, from, {
        groupByJid: (jid) => store.groups.byJid(jid),
        files: config,
        send: (jid, text, sender) => {
          const out = formatOutbound(text, sender);
          if (!out) return { ok: true };
          const sent = this.outbound.enqueue(jid, out, { kind: 'agent', sourceFolder: from.folder, sender });
          if (sent.ok) this.loop.markAnswered(from.jid);
          return sent;
        },
      });
    return handleTaskIpc(payload, from, {
      store,
      config,
      maxActiveTasksPerGroup: this.limits(from.folder).maxActiveTasks,
      onTasksChanged: this.tasksChanged,
      registerGroup: (group) => this.register(group),
      refreshGroups: async () => {
        for (const channel of this.channels) await channel.syncGroups?.(true).catch(() => undefined);
        this.snapshots.groups();
      },
    });
  }

  async start() {
    for (const c of this.channels)
      await c.connect().catch((err: unknown) => logger.error({ channel: c.name, err }, 'cannot connect'));
    this.outbound.start();
    this.snapshots.tasks();
    this.snapshots.groups();
    this.ipc.start();
    this.scheduler.start();
    this.loop.start();
  }

  async stop() {
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
