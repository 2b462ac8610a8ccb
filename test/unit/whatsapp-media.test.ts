import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { WAMessage } from '@whiskeysockets/baileys';
import { afterEach, describe, expect, it } from 'vitest';
import type { MediaDownloader } from '../../src/channels/whatsapp/media.js';
import { channelHarness, FAMILY, OWN_PN, waMessage, type Harness } from './whatsapp-fake-socket.js';

const ALICE = '15557770000@s.whatsapp.net';
const T = 1_700_000_000;

/** A downloader that serves bytes per message id and records what it was asked for. */
function fakeDownloader(files: Record<string, Buffer | (() => AsyncIterable<Uint8Array>)>) {
  const asked: string[] = [];
  const download: MediaDownloader = async (message: WAMessage) => {
    const id = message.key.id ?? '';
    asked.push(id);
    const file = files[id];
    if (!file) throw new Error(`media for ${id} expired`);
    return Buffer.isBuffer(file) ? file : file();
  };
  return { asked, download };
}

describe('WhatsApp channel: media', () => {
  let h: Harness;
  afterEach(async () => {
    await h.channel.disconnect();
    h.cleanup();
  });

  async function start(
    files: Parameters<typeof fakeDownloader>[0],
    extra: { maxBytes?: number; timeoutMs?: number } = {},
  ) {
    const downloader = fakeDownloader(files);
    h = channelHarness({ media: { download: downloader.download, ...extra } });
    await h.channel.connect();
    h.sock().open();
    return downloader;
  }

  const mediaDir = () => path.join(h.ipcDir, 'family', 'to-agent', 'media');

  it('saves an image in the read-only inbox of the group and points the agent at it, caption first', async () => {
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
    await start({ IMG1: jpeg });
    h.sock().upsert([
      waMessage({
        id: 'IMG1',
        remoteJid: FAMILY,
        participant: ALICE,
        pushName: 'Alice',
        timestamp: T,
        message: { imageMessage: { mimetype: 'image/jpeg', caption: '@Andy what is this?', fileLength: 8 } },
      }),
    ]);
    await h.channel.settled();
    const file = `${T * 1000}-IMG1.jpg`;
    expect(fs.readFileSync(path.join(mediaDir(), file))).toEqual(jpeg);
    expect(h.history(FAMILY)[0]?.content).toBe(
      `@Andy what is this?\n[image: /workspace/inbox/media/${file}]`,
    );
  });

  it('saves voice notes, audio, video and documents with safe names', async () => {
    const chunks = () => Readable.from([Buffer.from('OggS'), Buffer.from('-voice')]);
    await start({
      VOICE: chunks,
      AUDIO: Buffer.from('ID3'),
      VID: Buffer.from('mp4'),
      'DOC/../../x': Buffer.from('%PDF-1.7'),
    });
    h.sock().upsert([
      waMessage({
        id: 'VOICE',
        remoteJid: OWN_PN,
        fromMe: true,
        timestamp: T,
        message: { audioMessage: { mimetype: 'audio/ogg; codecs=opus', ptt: true } },
      }),
      waMessage({
        id: 'AUDIO',
        remoteJid: OWN_PN,
        fromMe: true,
        timestamp: T,
        message: { audioMessage: { mimetype: 'audio/mpeg' } },
      }),
      waMessage({
        id: 'VID',
        remoteJid: OWN_PN,
        fromMe: true,
        timestamp: T,
        message: { videoMessage: { mimetype: 'video/mp4' } },
      }),
      waMessage({
        id: 'DOC/../../x',
        remoteJid: OWN_PN,
        fromMe: true,
        timestamp: T,
        message: {
          documentWithCaptionMessage: {
            message: {
              documentMessage: {
                mimetype: 'application/octet-stream',
                fileName: '../../../etc/passwd\n].pdf',
                caption: 'the contract',
              },
            },
          },
        },
      }),
    ]);
    await h.channel.settled();
    const dir = path.join(h.ipcDir, 'main', 'to-agent', 'media');
    expect(fs.readdirSync(dir).sort()).toEqual(
      [
        `${T * 1000}-AUDIO.mp3`,
        `${T * 1000}-DOCx.pdf`,
        `${T * 1000}-VID.mp4`,
        `${T * 1000}-VOICE.ogg`,
      ].sort(),
    );
    expect(fs.readFileSync(path.join(dir, `${T * 1000}-VOICE.ogg`), 'utf8')).toBe('OggS-voice');
    expect(h.history(OWN_PN).map((m) => m.content)).toEqual([
      `[voice note: /workspace/inbox/media/${T * 1000}-VOICE.ogg]`,
      `[audio: /workspace/inbox/media/${T * 1000}-AUDIO.mp3]`,
      `[video: /workspace/inbox/media/${T * 1000}-VID.mp4]`,
      `the contract\n[document: /workspace/inbox/media/${T * 1000}-DOCx.pdf (../../../etc/passwd.pdf)]`,
    ]);
    expect(fs.existsSync(path.join(h.home, 'etc'))).toBe(false);
  });

  it('says so in the message when the download fails, and keeps no file', async () => {
    await start({});
    h.sock().upsert([
      waMessage({
        id: 'GONE',
        remoteJid: FAMILY,
        participant: ALICE,
        timestamp: T,
        message: { imageMessage: { caption: 'look' } },
      }),
    ]);
    await h.channel.settled();
    expect(h.history(FAMILY)[0]?.content).toBe(
      'look\n[image: the attachment could not be saved (download failed)]',
    );
    expect(fs.readdirSync(mediaDir())).toEqual([]);
  });

  it('refuses attachments over the size cap, declared or actual', async () => {
    const downloader = await start(
      { BIG: Buffer.alloc(10), STREAMED: () => Readable.from([Buffer.alloc(60), Buffer.alloc(60)]) },
      { maxBytes: 100 },
    );
    h.sock().upsert([
      waMessage({
        id: 'BIG',
        remoteJid: FAMILY,
        participant: ALICE,
        message: { documentMessage: { fileLength: 5_000_000 } },
      }),
      waMessage({ id: 'STREAMED', remoteJid: FAMILY, participant: ALICE, message: { documentMessage: {} } }),
    ]);
    await h.channel.settled();
    expect(downloader.asked).toEqual(['STREAMED']);
    const contents = h.history(FAMILY).map((m) => m.content);
    expect(contents[0]).toMatch(/^\[document: the attachment could not be saved \(too large\)\]$/);
    expect(contents[1]).toMatch(/^\[document: the attachment could not be saved \(too large/);
    expect(fs.readdirSync(mediaDir())).toEqual([]);
  });

  it('gives up on a download that stalls', async () => {
    const stalled = () => new Readable({ read() {} });
    await start({ SLOW: stalled }, { timeoutMs: 50 });
    h.sock().upsert([
      waMessage({ id: 'SLOW', remoteJid: FAMILY, participant: ALICE, message: { imageMessage: {} } }),
    ]);
    await h.channel.settled();
    expect(h.history(FAMILY)[0]?.content).toBe(
      '[image: the attachment could not be saved (download timed out)]',
    );
    expect(fs.readdirSync(mediaDir())).toEqual([]);
  });

  it('never writes through a link in place of the media folder: it is replaced by a real one', async () => {
    await start({ IMG: Buffer.from('x') });
    const outside = path.join(h.home, 'outside');
    fs.mkdirSync(outside);
    fs.mkdirSync(path.dirname(mediaDir()), { recursive: true });
    fs.symlinkSync(outside, mediaDir());
    h.sock().upsert([
      waMessage({ id: 'IMG', remoteJid: FAMILY, participant: ALICE, message: { imageMessage: {} } }),
    ]);
    await h.channel.settled();
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.lstatSync(mediaDir()).isDirectory()).toBe(true);
    expect(fs.readdirSync(mediaDir())).toHaveLength(1);
  });

  it('downloads nothing for chats that are not registered', async () => {
    const downloader = await start({ IMG: Buffer.from('x') });
    h.sock().upsert([
      waMessage({
        id: 'IMG',
        remoteJid: '15559990000@s.whatsapp.net',
        message: { imageMessage: { caption: 'hi' } },
      }),
    ]);
    await h.channel.settled();
    expect(downloader.asked).toEqual([]);
    expect(fs.existsSync(h.ipcDir)).toBe(false);
  });

  it('keeps the first file when the same message is delivered twice', async () => {
    const downloader = await start({ TWICE: Buffer.from('once') });
    const msg = waMessage({
      id: 'TWICE',
      remoteJid: FAMILY,
      participant: ALICE,
      timestamp: T,
      message: { imageMessage: { mimetype: 'image/jpeg' } },
    });
    h.sock().upsert([msg]);
    h.sock().upsert([msg], 'append');
    await h.channel.settled();
    expect(downloader.asked).toEqual(['TWICE']);
    expect(fs.readdirSync(mediaDir())).toEqual([`${T * 1000}-TWICE.jpg`]);
    expect(h.history(FAMILY)).toHaveLength(1);
  });
});
