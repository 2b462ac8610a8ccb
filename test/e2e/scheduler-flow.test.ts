import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTasksCommand } from '../../src/cli/tasks-command.js';
import { App } from '../../src/app.js';
import { openStore, type Store } from '../../src/db/store.js';
import { registerGroup } from '../../src/groups.js';
import { createRuntime } from '../../src/sandbox/detect.js';
import {
  allUserText,
  hasToolResult,
  isAgentTurn,
  newestUserText,
  type MockScript,
} from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { sandboxRuns, toolResultsSeen } from '../helpers/e2e-records.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * Scheduled tasks for real: an agent in a real sandbox schedules through the nanoclaw MCP tools,
 * the host's scheduler runs each task in a sandbox of its own, and the person manages tasks with
 * `nanoclaw tasks` against the same SQLite file while the host runs.
 */

/** Prefix the agent-runner puts before every task prompt. */
const AUTOMATIC_MARKER = '[SCHEDULED TASK - This is an automatic scheduled task';

/** Chat messages drive the agent (scenario script); a task run answers `TASK: <its prompt>`. */
const script: MockScript = (req) => {
  if (isAgentTurn(req.body) && !hasToolResult(req.body)) {
    const prompt = newestUserText(req.body);
    if (prompt.includes(AUTOMATIC_MARKER)) return { text: `TASK: ${prompt.trim().split('\n').at(-1)}` };
  }
  return scenarioScript(req);
};

/** `once` takes local time without Z; this host runs in UTC, so local time is the ISO prefix. */
const localIn = (ms: number) => new Date(Date.now() + ms).toISOString().slice(0, 19);
const taskIdIn = (text: string) => /task-\d+-[0-9a-f]+/.exec(text)?.[0] ?? '';

describe.each(['docker', 'bwrap'] as const)('scheduled tasks through a real sandbox (%s)', (runtime) => {
  let host: E2eHost;
  let cliStore: Store;
  const snapshotOf = (folder: string) =>
    JSON.parse(
      fs.readFileSync(path.join(host.home, 'data', 'ipc', folder, 'to-agent', 'current_tasks.json'), 'utf8'),
    ) as Array<{
      id: string;
      groupFolder: string;
      status: string;
      scheduleType: string;
      scheduleValue: string;
      prompt: string;
    }>;
  const count = (chat: string, text: string) => host.assistantTexts(chat).filter((t) => t === text).length;

  /** Posts `TOOL: mcp__nanoclaw__<name> <json>` and returns the agent's answer: the tool's result. */
  function tool(chat: string, name: string, input: object): Promise<string> {
    return ask(chat, `TOOL: mcp__nanoclaw__${name} ${JSON.stringify(input)}`);
  }

  /** Posts a scenario line (`RUN: …`, `TOOL: …`) and returns the agent's `RESULT: …` answer. */
  async function ask(chat: string, text: string): Promise<string> {
    const before = host.assistantTexts(chat).length;
    const res = await host.post(chat, text);
    expect(res.status).toBe(202);
    let answer = '';
    await expect
      .poll(
        () =>
          (answer =
            host
              .assistantTexts(chat)
              .slice(before)
              .find((t) => t.startsWith('RESULT:')) ?? ''),
        { timeout: 90_000, interval: 100 },
      )
      .not.toBe('');
    return answer;
  }

  /** `nanoclaw tasks …` on its own connection to the host's database file. */
  function cli(...args: string[]): { code: number; output: string } {
    let output = '';
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        output += chunk.toString();
        done();
      },
    });
    const code = runTasksCommand(args, { store: cliStore, out, config: host.app.config });
    return { code, output };
  }

  /** Waits until the task is not running, then proves no further run starts for a while. */
  async function expectNoRuns(id: string, chat: string, text: string): Promise<void> {
    await expect.poll(() => host.app.scheduler.inFlight.has(id), { timeout: 60_000 }).toBe(false);
    const runs = count(chat, text);
    await sleep(7_000); // more than two intervals
    expect([...host.app.scheduler.inFlight]).not.toContain(id);
    expect(count(chat, text)).toBe(runs);
  }

  beforeAll(async () => {
    host = await startE2eHost({
      runtime,
      script,
      env: { NANOCLAW_MIN_TASK_INTERVAL_MS: '2000' },
      prepare: (home) => {
        // Many replies in little time: lift the outbound rate limit for this suite.
        fs.mkdirSync(path.join(home, 'config'), { recursive: true });
        fs.writeFileSync(
          path.join(home, 'config', 'group-policy.json'),
          JSON.stringify({ default: { outboundPerMinute: 600, outboundBurst: 100 } }),
        );
      },
    });
    // The 10 s close delay of task sandboxes is proven in sandbox-runner.test.ts; here
    // it would only stretch every run.
    host.app.config.taskCloseDelayMs = 1_500;
    expect(host.app.config.timezone).toBe('UTC');
    const work = registerGroup(host.app.store, host.app.config, {
      jid: 'local:work',
      name: 'work',
      folder: 'work',
      requiresTrigger: false,
    });
    expect(work.ok).toBe(true);
    host.app.ipc.syncWatchers();
    cliStore = openStore(host.app.config.dbPath);
  });
  afterAll(async () => {
    cliStore?.close();
    await host?.stop();
  });

  it('runs a once task the agent scheduled in a sandbox of its own and marks it completed', async () => {
    const store = host.app.store;
    const at = localIn(8_000);
    const answer = await tool('local:main', 'schedule_task', {
      prompt: 'once-fired',
      schedule_type: 'once',
      schedule_value: at,
      context_mode: 'isolated',
    });
    const id = taskIdIn(answer);
    expect(store.tasks.byId(id)).toMatchObject({ scheduleType: 'once', nextRun: `${at}.000Z` });
    const session = store.state.getSession('main');
    expect(session).toBeDefined();

    await host.reply('local:main', (t) => t === 'TASK: once-fired', 60_000);
    await expect.poll(() => store.tasks.byId(id)?.status, { timeout: 30_000 }).toBe('completed');
    const runs = store.tasks.runLogs(id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'success', result: 'TASK: once-fired', error: null });
    expect(Date.parse(runs[0]!.runAt)).toBeGreaterThanOrEqual(Date.parse(`${at}Z`));

    // The prompt is marked as automatic; `isolated` means a fresh session that doesn't see the chat.
    const call = host.mock.requests.find(
      (r) => isAgentTurn(r.body) && newestUserText(r.body).includes(`[Scheduled task ${id}`),
    );
    expect(newestUserText(call?.body)).toContain(AUTOMATIC_MARKER);
    const chatCall = host.mock.requests.find(
      (r) => isAgentTurn(r.body) && newestUserText(r.body).includes('TOOL: mcp__nanoclaw__schedule_task'),
    );
    expect(allUserText(chatCall?.body)).toContain('once-fired');
    expect(allUserText(call?.body)).not.toContain('TOOL: mcp__nanoclaw__schedule_task');
    expect(store.state.getSession('main')).toBe(session);

    // Two sandboxes: the chat's, then the task's own, started as a scheduled task.
    await expect
      .poll(() => sandboxRuns(host.home, 'main').filter((r) => r.isScheduledTask).length, { timeout: 30_000 })
      .toBe(1);
    const chatRun = sandboxRuns(host.home, 'main').find((r) => !r.isScheduledTask);
    const taskRun = sandboxRuns(host.home, 'main').find((r) => r.isScheduledTask);
    expect(chatRun?.sandbox).toMatch(/^nanoclaw-main-\d+$/);
    expect(taskRun?.sandbox).toMatch(/^nanoclaw-main-\d+$/);
    expect(taskRun?.sandbox).not.toBe(chatRun?.sandbox);
  }, 120_000);

  it.each([
    ['cron', '61 * * * *', "invalid cron expression '61 * * * *'"],
    ['cron', '*/5 * * * * *', 'use 5 fields'],
    ['interval', 'hourly', 'positive whole number of milliseconds'],
    ['interval', '1500', 'at least 2000 ms'],
    ['once', `${localIn(3_600_000)}Z`, 'without Z or offset'],
    ['once', localIn(-600_000), 'is in the past'],
    ['once', '2026-02-30T10:00:00', 'is not a real date and time'],
  ])(
    'refuses %s %j with an error the agent sees',
    async (type, value, error) => {
      const tasks = host.app.store.tasks.all().length;
      const answer = await tool('local:main', 'schedule_task', {
        prompt: 'never',
        schedule_type: type,
        schedule_value: value,
      });
      expect(answer).toContain(error);
      expect(toolResultsSeen(host.mock.requests)).toContainEqual({
        text: expect.stringContaining(error) as string,
        isError: true,
      });
      // Refused in the sandbox, before any file reached the host.
      expect(host.app.store.tasks.all()).toHaveLength(tasks);
    },
    60_000,
  );

  let intervalId = '';
  let cronId = '';

  it('shows the agent the host’s current_tasks.json through list_tasks', async () => {
    cronId = taskIdIn(
      await tool('local:main', 'schedule_task', {
        prompt: 'daily report',
        schedule_type: 'cron',
        schedule_value: '0 9 * * *',
      }),
    );
    intervalId = taskIdIn(
      await tool('local:main', 'schedule_task', {
        prompt: 'tick',
        schedule_type: 'interval',
        schedule_value: '3000',
        target_group_jid: 'local:work',
      }),
    );
    await expect.poll(() => snapshotOf('main').map((t) => t.id)).toContain(intervalId);
    expect(host.app.store.tasks.byId(cronId)).toMatchObject({ groupFolder: 'main', contextMode: 'group' });
    expect(host.app.store.tasks.byId(intervalId)).toMatchObject({
      groupFolder: 'work',
      chatJid: 'local:work',
    });

    const listed = await tool('local:main', 'list_tasks', {});
    const snapshot = snapshotOf('main');
    expect(snapshot.length).toBeGreaterThanOrEqual(3);
    for (const task of snapshot) {
      expect(listed).toContain(
        `- ${task.id} [${task.groupFolder}] (${task.status}; ${task.scheduleType}: ${task.scheduleValue}`,
      );
      expect(listed).toContain(`): ${task.prompt}`);
    }
    expect(listed).toContain('last result: TASK: once-fired');
    // Main sees every group's tasks; the work group's file lists only its own.
    expect(snapshotOf('work').map((t) => t.id)).toEqual([intervalId]);
  }, 90_000);

  it('runs an interval task repeatedly; the agent pauses and resumes it', async () => {
    await host.reply('local:work', (t) => t === 'TASK: tick', 60_000);
    await expect.poll(() => count('local:work', 'TASK: tick'), { timeout: 60_000 }).toBeGreaterThanOrEqual(2);
    // A run is logged once its sandbox has closed, a moment after its message.
    await expect
      .poll(() => host.app.store.tasks.runLogs(intervalId).length, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(2);
    // `group` context (the tool's default): each run resumes the group's session with earlier runs.
    const runCalls = host.mock.requests.filter(
      (r) => isAgentTurn(r.body) && newestUserText(r.body).includes(`[Scheduled task ${intervalId}`),
    );
    expect(allUserText(runCalls.at(-1)?.body).split(`[Scheduled task ${intervalId}`).length - 1).toBe(
      runCalls.length,
    );

    expect(await tool('local:main', 'pause_task', { task_id: intervalId })).toContain('pause');
    await expect.poll(() => host.app.store.tasks.byId(intervalId)?.status).toBe('paused');
    await expectNoRuns(intervalId, 'local:work', 'TASK: tick');

    const before = count('local:work', 'TASK: tick');
    await tool('local:main', 'resume_task', { task_id: intervalId });
    await expect.poll(() => host.app.store.tasks.byId(intervalId)?.status).toBe('active');
    await expect.poll(() => count('local:work', 'TASK: tick'), { timeout: 30_000 }).toBeGreaterThan(before);
  }, 180_000);

  it('picks up pause and resume from the tasks CLI while the host runs', async () => {
    const paused = cli('pause', intervalId);
    expect(paused).toEqual({ code: 0, output: `Paused task ${intervalId} (work).\n` });
    // The host learns of the change through SQLite's data_version and republishes the snapshot.
    await expect
      .poll(() => snapshotOf('main').find((t) => t.id === intervalId)?.status, { timeout: 15_000 })
      .toBe('paused');
    await expectNoRuns(intervalId, 'local:work', 'TASK: tick');

    // The work agent sees its own (paused) task and nothing of main's.
    const listed = await tool('local:work', 'list_tasks', {});
    expect(listed).toContain(`- ${intervalId} (paused; interval: 3000`);
    expect(listed).not.toContain(cronId);

    const before = count('local:work', 'TASK: tick');
    const resumed = cli('resume', intervalId);
    expect(resumed.code).toBe(0);
    expect(resumed.output).toContain(`Resumed task ${intervalId} (work); next run`);
    // Well inside the scheduler's one-minute safety check: the data_version poll re-armed it.
    await expect.poll(() => count('local:work', 'TASK: tick'), { timeout: 25_000 }).toBeGreaterThan(before);
    expect(cli('list').output).toMatch(new RegExp(`${intervalId}\\s+work\\s+active`));
  }, 180_000);

  it('cancels from the agent: the interval task runs no more and leaves the snapshot', async () => {
    expect(await tool('local:main', 'cancel_task', { task_id: intervalId })).toContain('cancel');
    await expect.poll(() => host.app.store.tasks.byId(intervalId)).toBeUndefined();
    await expect.poll(() => snapshotOf('work')).toEqual([]);
    await expectNoRuns(intervalId, 'local:work', 'TASK: tick');
  }, 120_000);

  it('refuses a non-main agent managing main’s task, in the tool and on the host', async () => {
    const errorsDir = path.join(host.home, 'data', 'ipc', 'errors');
    const read = (file: string) => fs.readFileSync(path.join(errorsDir, file), 'utf8');
    const quarantined = () =>
      (fs.existsSync(errorsDir) ? fs.readdirSync(errorsDir) : [])
        .filter((f) => f.startsWith('work-') && f.endsWith('.json'))
        .map((f) => ({ ...(JSON.parse(read(f)) as object), reason: read(`${f}.reason.txt`).trim() }));
    const refusal = `group 'work': may manage only its own tasks; task '${cronId}' belongs to another group`;
    const before = host.app.store.tasks.byId(cronId);
    expect(before?.status).toBe('active');

    // The tool asks the host, which refuses and says why; the refused request is quarantined.
    for (const name of ['pause_task', 'cancel_task']) {
      expect(await tool('local:work', name, { task_id: cronId })).toContain(`The host refused: ${refusal}`);
      expect(toolResultsSeen(host.mock.requests)).toContainEqual({
        text: expect.stringContaining(refusal) as string,
        isError: true,
      });
    }
    await expect.poll(() => quarantined().length, { timeout: 15_000 }).toBe(2);

    // The agent can bypass the tool and write the request itself: the host refuses it too.
    const request = JSON.stringify({ type: 'cancel_task', taskId: cronId });
    const tasksDir = '/workspace/ipc/tasks';
    const written = await ask(
      'local:work',
      `RUN: printf '%s' '${request}' > ${tasksDir}/forged.json.tmp && mv ${tasksDir}/forged.json.tmp ${tasksDir}/forged.json && echo written`,
    );
    expect(written).toContain('written');
    await expect
      .poll(quarantined, { timeout: 15_000 })
      .toContainEqual({ type: 'cancel_task', taskId: cronId, reason: refusal });
    expect(quarantined()).toHaveLength(3);
    expect(host.app.store.tasks.byId(cronId)).toEqual(before);

    // The person can: cancel it from the CLI.
    expect(cli('cancel', cronId)).toEqual({ code: 0, output: `Cancelled task ${cronId} (main).\n` });
    expect(host.app.store.tasks.byId(cronId)).toBeUndefined();
    await expect.poll(() => snapshotOf('main').map((t) => t.id), { timeout: 15_000 }).not.toContain(cronId);
  }, 120_000);

  it('runs a task that fell due while the host was stopped once after restart', async () => {
    const hourly = taskIdIn(
      await tool('local:main', 'schedule_task', {
        prompt: 'hourly-catch-up',
        schedule_type: 'interval',
        schedule_value: '3600000',
      }),
    );
    const soonAt = localIn(12_000);
    const soon = taskIdIn(
      await tool('local:main', 'schedule_task', {
        prompt: 'missed-once',
        schedule_type: 'once',
        schedule_value: soonAt,
      }),
    );
    await expect.poll(() => host.app.store.tasks.byId(soon)?.status).toBe('active');
    await host.app.stop();

    // Three hourly runs missed while down, and the once task's time passes while down.
    const offline = openStore(host.app.config.dbPath);
    offline.tasks.update(hourly, { nextRun: new Date(Date.now() - 3 * 3_600_000).toISOString() });
    await sleep(Math.max(0, Date.parse(`${soonAt}Z`) + 1_000 - Date.now()));
    expect(offline.tasks.runLogs(soon)).toEqual([]);
    offline.close();

    const sandboxes = await createRuntime(host.app.config);
    await sandboxes.ensureRunning();
    const app = await App.create(host.app.config, sandboxes);
    await app.start();
    try {
      const texts = (text: string) =>
        app.store.messages
          .history('local:main', undefined, 1000)
          .filter((m) => m.isBotMessage && m.content === text).length;
      await expect.poll(() => app.store.tasks.byId(soon)?.status, { timeout: 60_000 }).toBe('completed');
      await expect.poll(() => app.store.tasks.runLogs(hourly).length, { timeout: 60_000 }).toBe(1);
      await expect.poll(() => [...app.scheduler.inFlight], { timeout: 30_000 }).toEqual([]);
      await sleep(3_000);
      expect(app.store.tasks.runLogs(hourly)).toHaveLength(1);
      expect(app.store.tasks.runLogs(soon)).toHaveLength(1);
      expect(texts('TASK: hourly-catch-up')).toBe(1);
      expect(texts('TASK: missed-once')).toBe(1);
      // Counted from the catch-up run, not from the missed slots.
      expect(Date.parse(app.store.tasks.byId(hourly)!.nextRun!)).toBeGreaterThan(Date.now() + 55 * 60_000);
    } finally {
      await app.stop();
    }
  }, 180_000);
});
