import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { outgoingContent } from '../../src/channels/whatsapp/media.js';
import { channelHarness, FAMILY, type Harness } from './whatsapp-fake-socket.js';

/** An outbox text with a `[file: ...]` marker goes to WhatsApp as media, the rest as its caption. */
describe('WhatsApp outgoing files', () => {
  let filesDir: string;
  beforeEach(() => {
    filesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-wa-files-'));
    fs.mkdirSync(path.join(filesDir, 'work'));
    fs.writeFileSync(path.join(filesDir, 'work', '1-abcd1234-chart.png'), 'IMG');
    fs.writeFileSync(path.join(filesDir, 'work', '1-abcd1234-report.pdf'), 'PDF');
  });
  let h: Harness | undefined;
  afterEach(async () => {
    h?.cleanup();
    h = undefined;
    fs.rmSync(filesDir, { recursive: true, force: true });
  });

  it('the channel sends an outbox text with a file marker as media through the socket', async () => {
    h = channelHarness({ filesDir });
    await h.channel.connect();
    const sock = h.sock();
    sock.open();
    await h.channel.sendMessage(FAMILY, 'the chart\n[file: work/1-abcd1234-chart.png]');
    expect(sock.sent).toEqual([{ jid: FAMILY, text: 'Andy: the chart' }]);
    expect(sock.contents).toEqual([
      { image: Buffer.from('IMG'), mimetype: 'image/png', caption: 'Andy: the chart' },
    ]);
  });

  it('sends an image with its caption, a document under its own name, plain text as text', () => {
    expect(outgoingContent(filesDir, 'the chart\n[file: work/1-abcd1234-chart.png]', 'Andy: ')).toEqual({
      image: Buffer.from('IMG'),
      mimetype: 'image/png',
      caption: 'Andy: the chart',
    });
    expect(outgoingContent(filesDir, '[file: work/1-abcd1234-report.pdf]')).toEqual({
      document: Buffer.from('PDF'),
      mimetype: 'application/pdf',
      fileName: 'report.pdf',
      caption: '',
    });
    expect(outgoingContent(filesDir, 'just text', 'Andy: ')).toEqual({ text: 'Andy: just text' });
    expect(outgoingContent(undefined, '[file: work/1-abcd1234-chart.png]')).toEqual({
      text: '[file: work/1-abcd1234-chart.png]',
    });
  });

  it('a file that is gone fails for good; a link in data/files is not followed', () => {
    expect(() => outgoingContent(filesDir, '[file: work/missing.png]')).toThrow(/is gone/);
    fs.symlinkSync('/etc/hostname', path.join(filesDir, 'work', 'link.txt'));
    expect(() => outgoingContent(filesDir, '[file: work/link.txt]')).toThrow(/symbolic link/);
  });
});
