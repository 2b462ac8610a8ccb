import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as wa from '@whiskeysockets/baileys';
import { MAX_FILE_BYTES } from '../../contract/ipc.js';
import { FILE_MARKER } from '../../ipc/message-handler.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { logger } from '../../logger.js';
import { withSafeDir } from '../../safe-fs.js';
import { CONTAINER_PATHS } from '../../sandbox/mount-plan.js';
import { ChannelSendError } from '../send-error.js';
import { baileysLogger } from './socket.js';

type Source = Buffer | AsyncIterable<Uint8Array>;
export type MediaDownloader = (
  message: wa.WAMessage,
  sock: wa.WASocket,
  signal: AbortSignal,
) => Promise<Source>;

const MIME: Record<string, string> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  mp4: 'video/mp4',
  ogg: 'audio/ogg',
  mp3: 'audio/mpeg',
  pdf: 'application/pdf',
};

export type MediaInfo = NonNullable<ReturnType<typeof findMedia>>;

// The sender's file name is shown to the agent, never used as a path.
export function findMedia(c: wa.proto.IMessage) {
  const m = c.imageMessage ?? c.videoMessage ?? c.audioMessage ?? c.documentMessage;
  const kind = c.imageMessage ? 'image' : c.videoMessage ? 'video' : c.audioMessage ? 'audio' : 'document';
  if (m)
    return {
      kind: c.audioMessage?.ptt ? 'voice note' : kind,
      mimetype: m.mimetype,
      fileName: c.documentMessage?.fileName,
      fileLength: m.fileLength && wa.toNumber(m.fileLength),
    };
}

export type SaveMediaResult = { ok: true; containerPath: string } | { ok: false; reason: string };
export type SaveMediaOptions = {
  ipcDir: string;
  tmpDir: string;
  folder: string;
  message: wa.WAMessage;
  media: MediaInfo;
  timeMs: number;
  sock: wa.WASocket;
  download?: MediaDownloader;
  maxBytes?: number;
  timeoutMs?: number;
};

// Downloaded to a host-private file, then moved into the group's read-only inbox (no agent can redirect it).
export async function saveMedia(o: SaveMediaOptions): Promise<SaveMediaResult> {
  const { media, maxBytes = 50 << 20 } = o;
  const tmp = path.join(o.tmpDir, `${crypto.randomUUID()}.part`);
  const signal = AbortSignal.timeout(o.timeoutMs ?? 120_000);
  let reason = 'download failed';
  try {
    if ((media.fileLength ?? 0) > maxBytes) throw (reason = 'too large');
    const id = o.message.key.id?.replace(/[^\w-]/g, '').slice(0, 64) || 'message';
    const mime = media.mimetype?.split(';')[0];
    const named = /\.([a-z0-9]{1,8})$/.exec(media.fileName?.toLowerCase() ?? '')?.[1];
    const ext = Object.keys(MIME).find((e) => MIME[e] === mime) ?? named ?? 'bin';
    let name = `${o.timeMs}-${id}.${ext}`;
    // A message delivered twice keeps its first file.
    if (!inToAgent(o, o.folder, [MEDIA_DIR], (dir) => dir.lstat(name))?.isFile()) {
      await fs.promises.mkdir(o.tmpDir, { recursive: true, mode: 0o700 });
      const source = await (o.download ?? baileysDownload)(o.message, o.sock, signal);
      let total = 0;
      await pipeline(
        Buffer.isBuffer(source) ? [source] : source,
        async function* (chunks: AsyncIterable<Uint8Array> | Buffer[]) {
          for await (const chunk of chunks) {
            if ((total += chunk.length) > maxBytes) throw (reason = 'too large');
            yield chunk;
          }
        },
        fs.createWriteStream(tmp, { flags: 'wx' }),
        { signal },
      );
      reason = 'inbox not writable';
      name = publishMedia(o, o.folder, tmp, name);
    }
    return { ok: true, containerPath: `${CONTAINER_PATHS.inbox}/${MEDIA_DIR}/${name}` };
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    logger.warn({ err, folder: o.folder }, 'whatsapp attachment not saved');
    return { ok: false, reason: signal.aborted ? 'download timed out' : reason };
  }
}

const baileysDownload: MediaDownloader = (message, sock, signal) =>
  wa.downloadMediaMessage(
    message,
    'stream',
    { options: { signal } },
    { logger: baileysLogger(), reuploadRequest: sock.updateMediaMessage },
  );

// Caption first: a trigger in it still triggers.
export function describeMedia({ kind, fileName }: MediaInfo, result: SaveMediaResult, caption: string) {
  const original = fileName?.replace(/[\p{Cc}\p{Cf}[\]]/gu, '').slice(0, 120);
  const reference = result.ok
    ? `[${kind}: ${result.containerPath}${original ? ` (${original})` : ''}]`
    : `[${kind}: the attachment could not be saved (${result.reason})]`;
  return caption ? `${caption}\n${reference}` : reference;
}

export type OutgoingContent = ReturnType<typeof outgoingContent>;

// A `[file: ...]` marker sends the file, the rest of the text as caption.
export function outgoingContent(filesDir: string | undefined, text: string, prefix = '') {
  const [line, folder, name] = (filesDir && FILE_MARKER.exec(text)) || [];
  if (!line) return { text: prefix + text };
  const data = withSafeDir(filesDir!, [folder!], {}, (dir) => dir.readFile(name!, MAX_FILE_BYTES));
  if (!data) throw new ChannelSendError(`sent file ${name} is gone`, 'permanent');
  const caption = (prefix + text.replace(line, '').trim()).trim();
  const mimetype = MIME[path.extname(name!).slice(1).toLowerCase()] ?? 'application/octet-stream';
  if (mimetype.startsWith('image/')) return { image: data, mimetype, caption };
  return { document: data, mimetype, fileName: name!.replace(/^\d+-[0-9a-f]{8}-/, ''), caption };
}
