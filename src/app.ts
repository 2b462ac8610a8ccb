import fs from 'node:fs';
import { isValidFolder, type Config } from './config.js';
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
import { formatOutbound } from './router.js';
import { createGroupPolicy, senderAllowed, type ResolvedLimits } from './policy/group-policy.js';
import { RateLimiter } from './policy/rate-limiter.js';
import { ProxyManager } from './proxy/proxy-manager.js';
import { writeClose, writeInput } from './ipc/to-agent.js';
import { ContainerRunner } from './sandbox/container-runner.js';
import { prepareContainerSkills } from './sandbox/container-skills.js';
import { loadMountAllowlist } from './sandbox/mount-allowlist.js';
import { hostIsRoot, type SandboxRuntime } from './sandbox/runtime.js';
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
  /** How long the model proxy waits on a silent upstream (default 10 minutes). */
  modelUpstreamTimeoutMs?: number;
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
  private readonly runtime: SandboxRuntime | undefined;
  /** Names of the sandboxes running right now. */
  private readonly sandboxes = new Set<string>();
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
    for (const group of this.store.groups.all()) {
      // A folder becomes a path: one that is not a plain name (edited into the database by hand)
      // is never created; its runs are refused by the sandbox runner.
      if (isValidFolder(group.folder)) ensureGroupFolder(config, group);
      else logger.error({ jid: group.jid, folder: group.folder }, 'registered group has an invalid folder');
    }

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
      ...(process.getuid?.() === 0 ? { sandboxUid: config.sandboxUid } : {}),
      ...(parts.modelUpstreamTimeoutMs ? { upstreamIdleTimeoutMs: parts.modelUpstreamTimeoutMs } : {}),
    });
    let runner: AgentRunner;
    if (parts.runner) runner = parts.runner;
    else if (parts.runtime) {
      runner = new ContainerRunner({
        config,
        runtime: parts.runtime,
        allowlist: () => loadMountAllowlist(config.configDir),
        prepare: async (group, user) => {
          prepareContainerSkills(config, group.folder, hostIsRoot() ? user : undefined);
          await this.proxies.ensureGroup(group.folder);
        },
      });
    } else throw new Error('App needs a sandbox runtime or a runner');
    this.runtime = parts.runtime;
    this.runner = trackedRunner(runner, this.sandboxes);

    // Only a plain folder name is ever joined into an IPC path.
    const folderOf = (jid: string) => {
      const folder = this.store.groups.byJid(jid)?.folder;
      return folder !== undefined && isValidFolder(folder) ? folder : undefined;
    };
    this.queue = new GroupQueue({
      maxConcurrent: config.maxConcurrentContainers,
      retryBaseMs: config.retryBaseMs,
      maxRetries: config.maxRetries,
      processMessages: (jid) => this.loop.processGroupMessages(jid),
      writeInput: (jid, text) => {
        const folder = folderOf(jid);
        if (folder) writeInput(config, folder, text);
      },
      writeClose: (jid) => {
        const folder = folderOf(jid);
        if (folder) writeClose(config, folder);
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
              // Same rules as results: <internal> never reaches a chat, a team member's name leads.
              const outgoing = formatOutbound(text, sender);
              if (!outgoing) return;
              const sent = await this.outbound.send(jid, outgoing, sender);
              // What the agent said reached a chat: its messages count as answered.
              if (sent) this.loop.markAnswered(source.jid);
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
      if (!isValidFolder(group.folder)) continue;
      try {
        writeTaskSnapshot(this.config, group, tasks);
      } catch (err) {
        logger.warn({ group: group.folder, err }, 'cannot write task snapshot');
      }
    }
  }

  writeGroupSnapshots(): void {
    const main = this.store.groups.main();
    try {
      if (main) writeAvailableGroups(this.config, main, this.store);
    } catch (err) {
      logger.warn({ group: main?.folder, err }, 'cannot write group snapshot');
    }
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

  /**
   * SPEC §4: stop taking work, ask sandboxes to finish (`_close`), wait up to the grace period,
   * stop whatever still runs, disconnect channels, close the store. Runs cut short here leave
   * their messages behind the cursor, so the next start answers them.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.failures.mute();
    this.loop.stop();
    this.scheduler.stop();
    const finished = await this.queue.shutdown(this.config.shutdownGraceMs);
    if (!finished) {
      const names = [...this.sandboxes];
      logger.warn({ sandboxes: names }, 'sandboxes still running after the grace period; stopping them');
      const runtime = this.runtime;
      if (runtime) {
        await Promise.all(
          names.map((name) =>
            runtime.stop(name).catch((err: unknown) => logger.error({ name, err }, 'cannot stop sandbox')),
          ),
        );
      }
      if (!(await this.queue.whenIdle(this.config.shutdownGraceMs)))
        logger.error('runs still active after their sandboxes were stopped');
    }
    this.ipc.stop();
    for (const channel of this.channels) await channel.disconnect().catch(() => undefined);
    await this.proxies.stop();
    this.store.close();
  }
}

/** Keeps the names of running sandboxes, so shutdown can stop those that outlive the grace period. */
function trackedRunner(runner: AgentRunner, running: Set<string>): AgentRunner {
  return {
    async run(group, input, hooks) {
      let name: string | undefined;
      try {
        return await runner.run(group, input, {
          ...hooks,
          onStarted: (started) => {
            name = started;
            running.add(started);
            hooks.onStarted?.(started);
          },
        });
      } finally {
        if (name) running.delete(name);
      }
    },
  };
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}
