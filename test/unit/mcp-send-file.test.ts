import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sendFile, type ToolContext } from '../../container/agent-runner/src/mcp-tools.js';
import { ipcFileSchema, RESPONSES_DIR } from '../../src/contract/ipc.js';

/** The runner's send_file: what it checks in the sandbox, and the request it writes for the host. */
describe('send_file in the runner', () => {
  let root: string;
  let ctx: ToolContext;
  const requests = () =>
    fs
      .readdirSync(path.join(ctx.ipcDir, 'messages'))
      .map((n) => JSON.parse(fs.readFileSync(path.join(ctx.ipcDir, 'messages', n), 'utf8')) as unknown);

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-runner-file-'));
    ctx = {
      chatJid: 'local:work',
      groupFolder: 'work',
      isMain: false,
      ipcDir: path.join(root, 'ipc'),
      inboxDir: path.join(root, 'inbox'),
      groupDir: path.join(root, 'group'),
    };
    fs.mkdirSync(path.join(ctx.groupDir!, 'out'), { recursive: true });
    vi.stubEnv('NANOCLAW_RESPONSE_WAIT_MS', '2000');
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('writes a file request with the path relative to the group folder and reports the host’s answer', async () => {
    fs.writeFileSync(path.join(ctx.groupDir!, 'out', 'a.png'), 'x');
    const answered = sendFile(ctx, { path: `${ctx.groupDir}/out/a.png`, caption: 'hi' });
    await vi.waitFor(() => expect(requests()).toHaveLength(1));
    const [request] = requests() as Array<{ requestId: string }>;
    expect(ipcFileSchema.parse(request)).toEqual({
      type: 'file',
      chatJid: 'local:work',
      path: 'out/a.png',
      caption: 'hi',
    });
    fs.mkdirSync(path.join(ctx.inboxDir, RESPONSES_DIR), { recursive: true });
    fs.writeFileSync(
      path.join(ctx.inboxDir, RESPONSES_DIR, `${request!.requestId}.json`),
      JSON.stringify({ ok: false, error: 'file refused: a symbolic link' }),
    );
    expect(await answered).toEqual({
      text: 'The host refused: file refused: a symbolic link',
      isError: true,
    });
  });

  it('refuses a path outside the workspace without asking the host', async () => {
    const refusals = await Promise.all(
      ['/etc/passwd', '../x', ctx.groupDir!].map((p) => sendFile(ctx, { path: p })),
    );
    for (const r of refusals)
      expect(r).toEqual({ text: expect.stringContaining('Only files inside'), isError: true });
    expect(fs.existsSync(path.join(ctx.ipcDir, 'messages'))).toBe(false);
  });
});
