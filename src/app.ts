import fs from 'node:fs';
import type { Config } from './config.js';
import { openStore, type Store } from './db/store.js';
import { readSecrets } from './env-file.js';
import { FailureNotices } from './failure-notice.js';
import { GroupQueue } from './group-queue.js';
import { ensureGroupFolder, ensureMainGroup, registerGroup } from './groups.js';
import { handleMessageIpc } from './ipc/message-handler.js';
import { handleTaskIpc } from './ipc/task-handler.js';
import { IpcWatcher } from './ipc/watcher.js';
import { logger } from './logger.js';
import { MessageLoop } from './message-loop.js';
import { Outbound } from './outbound.js';
import { createGroupPolicy, senderAllowed, type ResolvedLimits } from './policy/group-policy.js';
import { RateLimiter } from './policy/rate-limiter.js';
import { ProxyManager } from './proxy/proxy-manager.js';
import { ContainerRunner, writeCloseSentinel, writeIpcInput } from './sandbox/container-runner.js';
import { prepareContainerSkills } from './sandbox/container-skills.js';
import { loadMountAllowlist } from './sandbox/mount-allowlist.js';
import type { SandboxRuntime } from './sandbox/runtime.js';
import { TaskScheduler } from './scheduler/task-scheduler.js';
import { writeTaskSnapshot } from './scheduler/task-snapshot.js';
import { runTaskInSandbox } from './task-runner.js';
import type { AgentRunner, Channel, ChannelCallbacks } from './types.js';
import { writeAvailableGroups } from './available-groups.js';

export interface AppParts {
  /** The sandbox runtime; required unless a runner is given. */
  runtime?: SandboxRuntime;
  /** Tests of the host core pass an in-process runner; users always get the sandboxed one. */
  runner?: AgentRunner;
  /** Builds the channels once the host's callbacks exist. */
  channels(callbacks: ChannelCallbacks, app: App): Channel[];
}

/** Everything the running host holds, created once at start-up and passed down. */
export class App {
  readonly store: Store;
  readonly outbound: Outbound;
  readonly queue: GroupQueue;
  readonly loop: MessageLoop;
  readonly ipc: IpcWatcher;
  readonly scheduler: TaskScheduler;
  readonly proxies: ProxyManager;
  readonly runner: AgentRunner;
  readonly failures: FailureNotices;
  channels: Channel[] = [];
  /** Limits and sender allowlists per group folder, from $NANOCLAW_CONFIG_DIR/group-policy.json. */
  readonly limits: (folder: string) => ResolvedLimits;
  private readonly rateLimiter = new RateLimiter();
  private stopping = false;

  constructor(
    readonly config: Config,
    parts: AppParts,
  ) {
    for (const dir of [
      config.storeDir,
      config.groupsDir,
      config.ipcDir,
      config.sessionsDir,
      config.proxyDir,
    ]) {
      fs.mkdirSync(dir, { recursive: true });
    }
    this.store = openStore(config.dbPath);
    ensureMainGroup(this.store, config);
    for (const group of this.store.groups.all()) ensureGroupFolder(config, group);

    this.limits = createGroupPolicy(config.configDir);
    this.outbound = new Outbound({
      store: this.store,
      channels: () => this.channels,
      assistantName: config.assistantName,
      allowSend: (jid) => {
        const folder = this.store.groups.byJid(jid)?.folder;
        if (!folder) return true;
        const { outboundPerMinute, outboundBurst } = this.limits(folder);
        return this.rateLimiter.tryTake(folder, outboundPerMinute, outboundBurst);
      },
    });
    // Failure notices bypass the rate limit: they are rare, once per streak, and must arrive.
    this.failures = new FailureNotices((jid, text) =>
      this.outbound.send(jid, text, undefined, { unlimited: true }),
    );
    this.proxies = new ProxyManager({
      proxyDir: config.proxyDir,
      configDir: config.configDir,
      readSecrets: () => readSecrets(config.envFile),
      recordUsage: (folder, input, output) => this.store.usage.add(folder, today(), input, output),
      tokensUsedToday: (folder) => this.store.usage.tokensFor(folder, today()),
      dailyTokenBudget: (folder) => this.limits(folder).dailyTokenBudget,
      onBudgetExceeded: (folder) => {
        const group = this.store.groups.byFolder(folder);
        if (group)
          void this.failures.notify(
            group.jid,
            'This chat’s daily model budget is spent, so I can’t answer until it resets (midnight UTC).',
          );
      },
      ...(process.getuid?.() === 0 ? { sandboxUid: 1000 } : {}),
    });
    if (parts.runner) this.runner = parts.runner;
    else if (parts.runtime) {
      this.runner = new ContainerRunner({
        config,
        runtime: parts.runtime,
        allowlist: () => loadMountAllowlist(config.configDir),
        prepare: async (group) => {
          prepareContainerSkills(config, group.folder);
          await this.proxies.ensureGroup(group.folder);
        },
      });
    } else throw new Error('App needs a sandbox runtime or a runner');

    const folderOf = (jid: string) => this.store.groups.byJid(jid)?.folder;
    this.queue = new GroupQueue({
      maxConcurrent: config.maxConcurrentContainers,
      retryBaseMs: config.retryBaseMs,
      maxRetries: config.maxRetries,
      processMessages: (jid) => this.loop.processGroupMessages(jid),
      writeInput: (jid, text) => {
        const folder = folderOf(jid);
        if (folder) writeIpcInput(config, folder, text);
      },
      writeClose: (jid) => {
        const folder = folderOf(jid);
        if (folder) writeCloseSentinel(config, folder);
      },
      onGaveUp: (jid) => void this.failures.onGaveUp(jid),
    });
    this.loop = new MessageLoop({
      store: this.store,
      config,
      queue: this.queue,
      runner: this.runner,
      send: async (jid, text) => {
        await this.outbound.send(jid, text);
      },
      setTyping: (jid, on) => this.outbound.setTyping(jid, on),
      onRunFailed: (group, error) => void this.failures.onRunFailed(group.jid, error),
      onRunSucceeded: (group) => this.failures.onRunSucceeded(group.jid),
      mayTrigger: (group, message) =>
        senderAllowed(this.limits(group.folder), message.sender, message.isFromMe),
    });
    this.scheduler = new TaskScheduler({
      store: this.store,
      config,
      queue: this.queue,
      runTask: (task) =>
        runTaskInSandbox({ store: this.store, runner: this.runner, outbound: this.outbound, config }, task),
      onTasksChanged: (folder) => this.writeTaskSnapshots(folder),
    });
    this.ipc = new IpcWatcher({
      ipcDir: config.ipcDir,
      pollMs: config.ipcPollMs,
      groups: () => this.store.groups.all(),
      handle: async (kind, payload, source) => {
        if (kind === 'messages') {
          return handleMessageIpc(payload, source, {
            groupByJid: (jid) => this.store.groups.byJid(jid),
            send: async (jid, text, sender) => {
              await this.outbound.send(jid, sender ? `${sender}: ${text}` : text);
            },
          });
        }
        return handleTaskIpc(payload, source, {
          store: this.store,
          config,
          scheduler: this.scheduler,
          maxActiveTasksPerGroup: this.limits(source.folder).maxActiveTasks,
          onTasksChanged: (folder) => this.writeTaskSnapshots(folder),
          registerGroup: (group) => {
            const result = registerGroup(this.store, config, group);
            if (!result.ok) return result;
            this.ipc.syncWatchers();
            this.writeGroupSnapshots();
            return { ok: true };
          },
          refreshGroups: () => this.refreshGroups(),
        });
      },
    });
    this.channels = parts.channels(this.callbacks(), this);
  }

  private callbacks(): ChannelCallbacks {
    return {
      onChatMetadata: (chat) => this.store.messages.upsertChat(chat),
      onMessage: (message) => {
        // Only registered chats keep their content; others are known by name and time alone.
        const group = this.store.groups.byJid(message.chatJid);
        if (!group) return;
        const limits = this.limits(group.folder);
        if (
          limits.senderAllowlist?.mode === 'drop' &&
          !senderAllowed(limits, message.sender, message.isFromMe)
        ) {
          logger.info(
            { group: group.folder, sender: message.sender },
            'message from a sender not on the allowlist dropped',
          );
          return;
        }
        if (this.store.messages.store(message) !== null) this.loop.notify();
      },
    };
  }

  /** current_tasks.json for the changed group and for main (which sees every task). */
  writeTaskSnapshots(folder?: string): void {
    const tasks = this.store.tasks.all();
    for (const group of this.store.groups.all()) {
      if (folder && group.folder !== folder && !group.isMain) continue;
      try {
        writeTaskSnapshot(this.config.ipcDir, group, tasks);
      } catch (err) {
        logger.warn({ group: group.folder, err }, 'cannot write task snapshot');
      }
    }
  }

  writeGroupSnapshots(): void {
    const main = this.store.groups.main();
    if (main) writeAvailableGroups(this.config.ipcDir, main, this.store);
  }

  async refreshGroups(): Promise<void> {
    for (const channel of this.channels) await channel.syncGroups?.(true).catch(() => undefined);
    this.writeGroupSnapshots();
  }

  async start(): Promise<void> {
    for (const channel of this.channels) {
      try {
        await channel.connect();
      } catch (err) {
        logger.error({ channel: channel.name, err }, 'channel failed to connect');
      }
    }
    this.writeTaskSnapshots();
    this.writeGroupSnapshots();
    this.ipc.start();
    this.scheduler.start();
    this.loop.start();
  }

  /** Stop taking work, ask sandboxes to finish (up to the grace period), disconnect, close. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.loop.stop();
    this.scheduler.stop();
    const finished = await this.queue.shutdown(this.config.shutdownGraceMs);
    if (!finished)
      logger.warn('sandboxes still running after the grace period; they are stopped with the host');
    this.ipc.stop();
    for (const channel of this.channels) await channel.disconnect().catch(() => undefined);
    await this.proxies.stop();
    this.store.close();
  }
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}
