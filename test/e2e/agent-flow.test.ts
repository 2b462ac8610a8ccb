import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_UID } from '../../src/config.js';
import { registerGroup } from '../../src/groups.js';
import { sandboxUser } from '../../src/sandbox/runtime.js';
import { allUserText } from '../fixtures/mock-anthropic.js';
import { startE2eHost, type E2eHost } from '../helpers/e2e-host.js';
import { scenarioScript } from '../helpers/scenario-script.js';

/**
 * The core path for real: a message posted to the local channel → the host → a real sandbox →
 * the real Claude Agent SDK (talking to a scripted mock model through the model proxy) → a reply.
 */
describe.each(['docker', 'bwrap', 'podman'] as const)('message → sandbox → SDK → reply (%s)', (runtime) => {
  let host: E2eHost;

  beforeAll(async () => {
    host = await startE2eHost({ runtime, script: scenarioScript });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('runs the Bash tool inside the sandbox and delivers the answer to the chat', async () => {
    const res = await host.post('local:main', 'RUN: echo from-sandbox > proof.txt && id -u && hostname');
    expect(res.status).toBe(202);
    const answer = await host.reply('local:main', (t) => t.startsWith('RESULT:'));
    // The sandbox uid (61000 under a root host), not a real user's such as 1000.
    expect(answer).toMatch(new RegExp(`\\b${sandboxUser({ sandboxUid: DEFAULT_SANDBOX_UID }).uid}\\b`));
    expect(fs.readFileSync(path.join(host.home, 'groups', 'main', 'proof.txt'), 'utf8')).toBe(
      'from-sandbox\n',
    );
    // The model call went through the proxy with the real key injected.
    const agentCall = host.mock.requests.find((r) => r.path.startsWith('/v1/messages'));
    expect(agentCall?.headers['x-api-key']).toBe(`sk-ant-canary-${runtime}-0123456789`);
  });

  it('pipes a follow-up into the running sandbox, which answers within the same session', async () => {
    expect(host.app.queue.isActive('local:main')).toBe(true);
    const before = host.mock.requests.length;
    await host.post('local:main', 'second message');
    await host.reply('local:main', (t) => t === 'ECHO: second message');
    const call = host.mock.requests.slice(before).find((r) => allUserText(r.body).includes('second message'));
    // Same conversation: the earlier command is still in the model's context.
    expect(allUserText(call?.body)).toContain('echo from-sandbox');
  });

  it('delivers the agent’s send_message through IPC', async () => {
    await host.post('local:main', 'SEND: hello via mcp');
    await host.reply('local:main', (t) => t === 'hello via mcp');
  });

  it('resumes the session in the next sandbox after the idle one closed', async () => {
    // IDLE_TIMEOUT is 4 s in this suite: wait for the sandbox to close on its own.
    await expect
      .poll(() => host.app.queue.isActive('local:main'), { timeout: 30_000, interval: 200 })
      .toBe(false);
    const before = host.mock.requests.length;
    await host.post('local:main', 'after restart');
    await host.reply('local:main', (t) => t === 'ECHO: after restart');
    const call = host.mock.requests.slice(before).find((r) => allUserText(r.body).includes('after restart'));
    expect(allUserText(call?.body)).toContain('second message');
  });

  it('keeps a non-main group inside its own mounts', async () => {
    const store = host.app.store;
    for (const folder of ['work', 'family']) {
      const r = registerGroup(store, host.app.config, {
        jid: `local:${folder}`,
        name: folder,
        folder,
        requiresTrigger: false,
      });
      expect(r.ok).toBe(true);
    }
    fs.writeFileSync(path.join(host.home, 'groups', 'family', 'secret.txt'), 'family-secret');
    host.app.ipc.syncWatchers();
    const probe = [
      'echo "WS=$(ls /workspace | tr "\\n" ,)"',
      'echo "UP=$(ls /workspace/group/.. | tr "\\n" ,)"',
      'echo "FIND=$(find / -name secret.txt 2>/dev/null | wc -l)"',
      'echo "ENV=$(cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c canary)"',
      'echo "NET=$(awk -F: \'NR>2{print $1}\' /proc/net/dev | tr -d " " | tr "\\n" ,)"',
    ].join('; ');
    await host.post('local:work', `RUN: ${probe}`);
    const answer = await host.reply('local:work', (t) => t.startsWith('RESULT:'));
    // Only its own folder, global memory and its IPC dir: no project, no other group, no state dirs.
    // (the image has an empty /workspace/extra for allowlisted mounts; bwrap creates it only when used)
    expect(answer).toMatch(/WS=(extra,)?global,group,inbox,ipc,\n/);
    expect(answer).toMatch(/UP=(extra,)?global,group,inbox,ipc,\n/);
    expect(answer).toContain('FIND=0');
    expect(answer).toContain('ENV=0');
    expect(answer).toContain('NET=lo,');
  });

  it('refuses a non-main agent’s send_message to another group’s chat', async () => {
    await host.post(
      'local:work',
      'TOOL: mcp__nanoclaw__send_message {"text":"sneaky","chatJid":"local:family"}',
    );
    await host.reply('local:work', (t) => t.startsWith('RESULT:'));
    // The MCP server always writes the group's own chat; a forged file is refused by the host.
    const forged = path.join(host.home, 'data', 'ipc', 'work', 'from-agent', 'messages', '999-forged.json');
    fs.writeFileSync(forged, JSON.stringify({ type: 'message', chatJid: 'local:family', text: 'forged' }));
    await expect.poll(() => fs.existsSync(forged), { timeout: 10_000 }).toBe(false);
    expect(host.assistantTexts('local:family')).toEqual([]);
    const errors = fs.readdirSync(path.join(host.home, 'data', 'ipc', 'errors'));
    expect(errors.some((f) => f.startsWith('work-') && f.endsWith('forged.json'))).toBe(true);
  });
  it('mounts an allowlisted directory but refuses a symlink in it that points at ~/.ssh', async () => {
    const fakeHome = path.join(host.home, 'fake-home');
    fs.mkdirSync(path.join(fakeHome, '.ssh'), { recursive: true });
    fs.writeFileSync(path.join(fakeHome, '.ssh', 'id_rsa'), 'PRIVATE-KEY-MATERIAL');
    fs.mkdirSync(path.join(fakeHome, 'projects', 'notes'), { recursive: true });
    fs.writeFileSync(path.join(fakeHome, 'projects', 'notes', 'todo.txt'), 'buy milk');
    fs.symlinkSync(path.join(fakeHome, '.ssh'), path.join(fakeHome, 'projects', 'backdoor'));
    fs.mkdirSync(host.app.config.configDir, { recursive: true });
    fs.writeFileSync(
      path.join(host.app.config.configDir, 'mount-allowlist.json'),
      JSON.stringify({
        allowedRoots: [{ path: path.join(fakeHome, 'projects'), allowReadWrite: false }],
        blockedPatterns: [],
        nonMainReadOnly: true,
      }),
    );
    const work = host.app.store.groups.byJid('local:work')!;
    host.app.store.groups.upsert({
      ...work,
      containerConfig: {
        additionalMounts: [
          { hostPath: path.join(fakeHome, 'projects', 'notes') },
          { hostPath: path.join(fakeHome, 'projects', 'backdoor'), containerPath: 'backdoor' },
        ],
      },
    });
    // The next message starts a new sandbox with the new mounts. (The needle is split so the
    // command itself, kept in the session transcript, doesn't match.)
    await expect
      .poll(() => host.app.queue.isActive('local:work'), { timeout: 30_000, interval: 200 })
      .toBe(false);
    await host.post(
      'local:work',
      'RUN: echo "EXTRA=$(ls /workspace/extra | tr "\\n" ,)"; cat /workspace/extra/notes/todo.txt; ' +
        'K=PRIVATE-KEY; echo "KEYS=$(grep -rl "$K-MATERIAL" /workspace /home /tmp /run 2>/dev/null | wc -l)"',
    );
    const answer = await host.reply('local:work', (t) => t.startsWith('RESULT:') && t.includes('EXTRA='));
    expect(answer).toContain('EXTRA=notes,');
    expect(answer).toContain('buy milk');
    expect(answer).toContain('KEYS=0');
  });
});
