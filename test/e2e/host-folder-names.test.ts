import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runGroupsCommand } from '../../src/cli/groups-command.js';
import { PROJECT_ROOT } from '../../src/config.js';
import { openStore } from '../../src/db/store.js';
import { logger } from '../../src/logger.js';
import { SandboxRunner } from '../../src/sandbox/sandbox-runner.js';
import type { SandboxRuntime, SandboxSpec } from '../../src/sandbox/runtime.js';
import type { RegisteredGroup } from '../../src/types.js';
import { ensureHostBuild } from '../helpers/host-process.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { tempHome } from '../helpers/temp-home.js';

/** Folder names that must never become a group: traversal, absolute, nested, reserved, non-ASCII. */
const BAD_FOLDERS = [
  '../x',
  '/abs',
  'a/b',
  '..',
  '.',
  'global',
  'Global',
  'errors',
  'grüppe',
  'ｍａｉｎ',
  'ab\u0301c',
  'a b',
  'a\nb',
  'main\n',
  '-x',
  '_x',
  'x'.repeat(65),
  'a\\b',
  'a:b',
  'x\u0000y',
];

/** A runtime that records what it is asked and never starts anything. */
function spyRuntime(): SandboxRuntime & { spawned: SandboxSpec[] } {
  const spawned: SandboxSpec[] = [];
  return {
    kind: 'docker',
    spawned,
    ensureRunning: async () => undefined,
    imageExists: async () => true,
    spawn(spec: SandboxSpec): ChildProcess {
      spawned.push(spec);
      throw new Error('no sandbox may start in this test');
    },
    stop: async () => undefined,
    cleanupOrphans: async () => [],
  };
}

/** Every directory under root, relative: to prove nothing was created outside the plan. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      out.push(path.relative(root, path.join(dir, entry.name)));
      walk(path.join(dir, entry.name));
    }
  };
  walk(root);
  return out.sort();
}

describe('path-traversal and other bad folder names', () => {
  let env: ReturnType<typeof tempHome>;
  let host: E2eHost | undefined;
  afterEach(async () => {
    await host?.stop();
    host = undefined;
    env?.cleanup();
  });

  it('are refused by `nanoclaw groups register`', () => {
    env = tempHome();
    const store = openStore(env.config.dbPath);
    try {
      for (const folder of BAD_FOLDERS) {
        let said = '';
        const out = new Writable({ write: (chunk, _enc, done) => ((said += String(chunk)), done()) });
        const code = runGroupsCommand(['register', '--jid', 'x@g.us', '--name', 'X', '--folder', folder], {
          store,
          config: env.config,
          out,
        });
        // '-x' already fails as an unknown option (usage, exit 2); the rest reach the folder rule.
        if (folder === '-x') expect(code).toBe(2);
        else {
          expect(code, folder).toBe(1);
          expect(said, folder).toMatch(/^error: invalid folder/);
        }
      }
      expect(store.groups.all()).toEqual([]);
    } finally {
      store.close();
    }
    expect(tree(env.home)).toEqual(['store']);
  });

  it('never come from a WhatsApp group name: `groups register --name` derives a safe, unused folder', () => {
    env = tempHome();
    const store = openStore(env.config.dbPath);
    const names = [
      '../x',
      '/abs',
      '..',
      'global',
      'GLOBAL!',
      'errors',
      'grüppe',
      'ｍａｉｎ',
      'a\nb',
      '-x',
      '💥',
      'x'.repeat(90),
    ];
    let folders: string[] = [];
    try {
      names.forEach((name, i) =>
        store.messages.upsertChat({
          jid: `${i + 1}@g.us`,
          name,
          timestamp: '2030-01-01T00:00:00.000Z',
          channel: 'whatsapp',
          isGroup: true,
        }),
      );
      store.groups.upsert({
        jid: 'local:main',
        name: 'Main',
        folder: 'main',
        trigger: '@Andy',
        requiresTrigger: false,
        isMain: true,
        addedAt: '2030-01-01T00:00:00.000Z',
      });
      folders = names.map((name) => {
        let said = '';
        const out = new Writable({ write: (chunk, _enc, done) => ((said += String(chunk)), done()) });
        const code = runGroupsCommand(['register', `--name=${name}`], { store, config: env!.config, out });
        expect(code, `${name}: ${said}`).toBe(0);
        return /as '([^']+)'/.exec(said)![1]!;
      });
      expect(folders).toEqual([
        'x',
        'abs',
        'wa-group',
        'global-2',
        'global-3',
        'errors-2',
        'gruppe',
        'main-2',
        'a-b',
        'x-2',
        'wa-group-2',
        'x'.repeat(40),
      ]);
    } finally {
      store.close();
    }
    expect(fs.readdirSync(env.home).sort()).toEqual(['groups', 'store']);
    expect(fs.readdirSync(env.config.groupsDir).sort()).toEqual(['global', ...folders].sort());
  });

  describe('through the real CLI', () => {
    beforeAll(() => ensureHostBuild());
    it('exits 1 with a message naming the rule', () => {
      env = tempHome();
      for (const folder of ['../x', '/abs', 'global']) {
        const run = spawnSync(
          process.execPath,
          [
            path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js'),
            'groups',
            'register',
            '--jid',
            'y@g.us',
            '--name',
            'Y',
            '--folder',
            folder,
          ],
          {
            encoding: 'utf8',
            env: {
              PATH: process.env.PATH,
              NANOCLAW_HOME: env.home,
              NANOCLAW_CONFIG_DIR: path.join(env.home, 'config'),
            },
          },
        );
        expect(run.status, run.stdout + run.stderr).toBe(1);
        expect(run.stderr).toContain(`invalid folder '${folder}'`);
      }
      expect(fs.existsSync(path.join(env.home, 'x'))).toBe(false);
      expect(fs.existsSync('/abs')).toBe(false);
    });
  });

  it('are refused over IPC `register_group`, even from main, and quarantined with the reason', async () => {
    host = await startE2eHost({ runtime: spyRuntime() });
    const tasksDir = path.join(host.config.ipcDir, 'main', 'from-agent', 'tasks');
    BAD_FOLDERS.forEach((folder, i) =>
      fs.writeFileSync(
        path.join(tasksDir, `${1000 + i}-register.json`),
        JSON.stringify({
          type: 'register_group',
          jid: `bad${i}@g.us`,
          name: `Bad ${i}`,
          folder,
          trigger: '@Andy',
        }),
      ),
    );
    const errorsDir = path.join(host.config.ipcDir, 'errors');
    const reasons = () =>
      fs.existsSync(errorsDir) ? fs.readdirSync(errorsDir).filter((n) => n.endsWith('.reason.txt')) : [];
    await vi.waitFor(() => expect(reasons()).toHaveLength(BAD_FOLDERS.length), { timeout: 10_000 });
    for (const name of reasons())
      expect(fs.readFileSync(path.join(errorsDir, name), 'utf8')).toMatch(
        /^group 'main': invalid folder '.*'/s,
      );
    expect(host.app.store.groups.all().map((g) => g.folder)).toEqual(['main']);
    expect(fs.readdirSync(host.config.groupsDir).sort()).toEqual(['global', 'main']);
    expect(fs.readdirSync(host.config.ipcDir).sort()).toEqual(['errors', 'main']);
  });

  it('never reach a sandbox: the container runner refuses before preparing anything', async () => {
    env = tempHome();
    const runtime = spyRuntime();
    const runner = new SandboxRunner({ config: env.config, runtime, allowlist: () => null });
    for (const folder of BAD_FOLDERS) {
      const group: RegisteredGroup = {
        jid: 'x@g.us',
        name: 'X',
        folder,
        trigger: '@Andy',
        requiresTrigger: false,
        isMain: false,
        addedAt: new Date().toISOString(),
      };
      const prompt = {
        prompt: 'hi',
        groupFolder: folder,
        chatJid: 'x@g.us',
        isMain: false,
        assistantName: 'Andy',
      };
      const output = await runner.run(group, prompt, { onOutput: async () => undefined });
      expect(output, folder).toMatchObject({ status: 'error', error: `Invalid group folder: ${folder}` });
    }
    expect(runtime.spawned).toEqual([]);
    expect(tree(env.home)).toEqual([]);
  });

  it('a bad folder edited into the database: nothing is created, its IPC is ignored, runs are refused', async () => {
    env = tempHome();
    const store = openStore(env.config.dbPath);
    store.groups.upsert({
      jid: 'local:escape',
      name: 'Escape',
      folder: '../escape',
      trigger: '@Andy',
      requiresTrigger: false,
      isMain: false,
      addedAt: new Date().toISOString(),
    });
    store.close();
    // A key, so the run gets as far as the folder check (no key blocks every run before that).
    fs.writeFileSync(path.join(env.home, '.env'), 'ANTHROPIC_API_KEY=sk-ant-test\n');
    const error = vi.spyOn(logger, 'error');
    const runtime = spyRuntime();
    host = await startE2eHost({ home: env.home, runtime, tune: { retryBaseMs: 50, maxRetries: 1 } });
    expect(error).toHaveBeenCalledWith(
      expect.objectContaining({ folder: '../escape' }),
      'registered group has an invalid folder',
    );
    await host.postRaw('local:escape', JSON.stringify({ text: 'let me out' }));
    // Refused before any sandbox: retried once (tune), then the person hears it gave up.
    await host.waitFor('local:escape', (t) => t.startsWith('Sorry, I still couldn’t answer'), 10_000);
    expect(host.assistantTexts('local:escape')).toHaveLength(2);
    expect(runtime.spawned).toEqual([]);
    expect(fs.existsSync(path.join(env.home, 'escape'))).toBe(false);
    expect(fs.existsSync(path.join(env.home, 'data', 'escape'))).toBe(false);
    error.mockRestore();
  });
});
