import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LocalFilesDeps } from '../../src/channels/local/api.js';
import { MAX_FILE_BYTES } from '../../src/contract/ipc.js';
import { request, startHarness, type Harness } from '../helpers/local-harness.js';

/** Attachments on the local channel: uploads land in the group's inbox media, sent files are served. */
async function filesHarness(): Promise<Harness & { files: LocalFilesDeps }> {
  const h = await startHarness();
  const files: LocalFilesDeps = {
    ipcDir: path.join(h.home, 'data', 'ipc'),
    filesDir: path.join(h.home, 'data', 'files'),
    tmpDir: path.join(h.home, 'data', 'tmp'),
    folderOf: (jid) => (jid === 'local:main' ? 'main' : undefined),
  };
  await h.channel.disconnect();
  const again = await startHarness({ files }, h.home);
  return Object.assign(again, { files });
}

const upload = (h: Harness, body: Buffer | string, headers: Record<string, string>, chat = 'local:main') =>
  request(h, { method: 'POST', path: `/api/chats/${encodeURIComponent(chat)}/files`, headers, body });

describe('local channel files', () => {
  it('publishes an upload into the inbox media with a safe name and ingests a message naming it', async () => {
    const h = await filesHarness();
    const res = await upload(h, 'PNGBYTES', {
      'content-type': 'image/png',
      'x-file-name': encodeURIComponent('../my pic.PNG'),
      'x-caption': encodeURIComponent('what is this?'),
    });
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ name: '_my_pic.PNG' });
    const name = res.json().name as string;
    const media = path.join(h.files.ipcDir, 'main', 'to-agent', 'media', name);
    expect(fs.readFileSync(media, 'utf8')).toBe('PNGBYTES');
    expect(h.messages).toHaveLength(1);
    expect(h.messages[0]).toMatchObject({
      id: res.json().id,
      chatJid: 'local:main',
      content: `what is this?\n[image: /workspace/inbox/media/${name}]`,
      isFromMe: true,
    });
    const again = await upload(h, 'other', { 'content-type': 'application/pdf', 'x-file-name': 'doc' });
    expect(again.json().name).toBe('doc.pdf');
    expect(h.messages[1]!.content).toBe('[document: /workspace/inbox/media/doc.pdf]');
    expect(fs.readdirSync(h.files.tmpDir)).toEqual([]);

    const served = await request(h, { path: `/api/media/local%3Amain/${name}` });
    expect(served.status).toBe(200);
    expect(served.text).toBe('PNGBYTES');
    expect(served.headers['content-type']).toBe('image/png');
    expect(served.headers['x-content-type-options']).toBe('nosniff');
  });

  it('refuses an unregistered chat, a type off the list, an oversized or empty body', async () => {
    const h = await filesHarness();
    const png = { 'content-type': 'image/png' };
    expect((await upload(h, 'x', png, 'local:other')).status).toBe(409);
    expect((await upload(h, 'x', { 'content-type': 'text/html' })).status).toBe(415);
    expect((await upload(h, 'x', { 'content-type': 'image/svg+xml' })).status).toBe(415);
    const big = await upload(h, Buffer.alloc(MAX_FILE_BYTES + 1), png);
    expect(big.status).toBe(413);
    expect((await upload(h, '', png)).status).toBe(400);
    expect(h.messages).toEqual([]);
    expect(fs.readdirSync(h.files.tmpDir)).toEqual([]);
  });

  it('serves what an agent sent: images inline, other files as attachments; nothing outside', async () => {
    const h = await filesHarness();
    fs.mkdirSync(path.join(h.files.filesDir, 'main'), { recursive: true });
    fs.writeFileSync(path.join(h.files.filesDir, 'main', '1-abcd1234-a.png'), 'IMG');
    fs.writeFileSync(path.join(h.files.filesDir, 'main', '1-abcd1234-notes.txt'), 'hello');
    const img = await request(h, { path: '/api/files/main/1-abcd1234-a.png' });
    expect(img.status).toBe(200);
    expect(img.headers['content-disposition']).toBe('inline; filename="1-abcd1234-a.png"');
    const txt = await request(h, { path: '/api/files/main/1-abcd1234-notes.txt' });
    expect(txt.text).toBe('hello');
    expect(txt.headers['content-type']).toBe('text/plain');
    expect(txt.headers['content-disposition']).toBe('attachment; filename="1-abcd1234-notes.txt"');
    expect(txt.headers['x-content-type-options']).toBe('nosniff');
    for (const bad of [
      '/api/files/main/..%2Fx',
      '/api/files/..%2F..%2Fdata/x',
      '/api/files/main/missing.txt',
    ])
      expect((await request(h, { path: bad })).status).toBe(404);
    expect((await request(h, { path: '/api/files/main/1-abcd1234-a.png', auth: false })).status).toBe(401);
  });

  it('answers 503 without file support', async () => {
    const h = await startHarness();
    expect((await upload(h, 'x', { 'content-type': 'image/png' })).status).toBe(503);
    expect((await request(h, { path: '/api/files/main/a.png' })).status).toBe(503);
  });
});
