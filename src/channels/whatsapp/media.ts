import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as wa from '@whiskeysockets/baileys';
import { isValidFolder, MAX_FILE_BYTES } from '../../contract/ipc.js';
import { FILE_MARKER } from '../../ipc/message-handler.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { logger } from '../../logger.js';
import { withSafeDir } from '../../safe-fs.js';
import { CONTAINER_PATHS } from '../../sandbox/mount-plan.js';
import { ChannelSendError } from '../send-error.js';
import { baileysLogger } from './socket.js';

type Source = Buffer | AsyncIterable<Uint8Array>;
export type MediaDownloader = (message: wa.WAMessage, sock: wa.WASocket) => Promise<Source>;

const baileysDownload: MediaDownloader = (message, sock) =>
  wa.downloadMediaMessage(
    message,
    'stream',
    {},
    { logger: baileysLogger(), reuploadRequest: sock.updateMediaMessage },
  );

const OOXML = 'application/vnd.openxmlformats-officedocument.';
const MIME: Record<string, string> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  mp4: 'video/mp4',
  ogg: 'audio/ogg',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  pdf: 'application/pdf',
  txt: 'text/plain',
  csv: 'text/csv',
  docx: `${OOXML}wordprocessingml.document`,
  xlsx: `${OOXML}spreadsheetml.sheet`,
};
const DEFAULT_EXT = { image: 'jpg', video: 'mp4', audio: 'ogg', 'voice note': 'ogg', document: 'bin' };

export interface MediaInfo {
  kind: keyof typeof DEFAULT_EXT;
  mimetype?: string | null;
  fileName?: string | null; // the sender's: shown to the agent, never used as a path
  fileLength?: number;
}

export function findMedia(c: wa.proto.IMessage): MediaInfo | undefined {
  const m = c.imageMessage ?? c.videoMessage ?? c.audioMessage ?? c.documentMessage;
  if (!m) return undefined;
  const kind = c.imageMessage ? 'image' : c.videoMessage ? 'video' : c.audioMessage ? 'audio' : 'document';
  return {
    kind: c.audioMessage?.ptt ? 'voice note' : kind,
    mimetype: m.mimetype,
    fileName: c.documentMessage?.fileName,
    fileLength: wa.toNumber(m.fileLength),
  };
}

export type SaveMediaResult = { ok: true; containerPath: string } | { ok: false; reason: string };

export interface SaveMediaOptions {
  ipcDir: string;
  tmpDir: string; // host-private
  folder: string;
  message: wa.WAMessage;
  media: MediaInfo;
  timeMs: number;
  sock: wa.WASocket;
  download?: MediaDownloader;
  maxBytes?: number;
  timeoutMs?: number;
}

// Its message is fit to show the agent (no host paths).
class MediaError extends Error {}
const mb = (bytes: number) => `${Math.ceil(bytes / (1024 * 1024))} MB`;

// Downloaded to a host-private file first, then moved into the group's read-only inbox, where no agent can
// plant anything to redirect it.
export async function saveMedia(opts: SaveMediaOptions): Promise<SaveMediaResult> {
  const { folder, media, message, maxBytes = 50 * 1024 * 1024 } = opts;
  const tmp = path.join(opts.tmpDir, `${crypto.randomUUID()}.part`);
  try {
    if (!isValidFolder(folder)) throw new MediaError('invalid group folder');
    const declared = media.fileLength ?? 0;
    if (declared > maxBytes) throw new MediaError(`too large (${mb(declared)}; limit ${mb(maxBytes)})`);
    // Only characters that cannot form a path.
    const id = message.key.id?.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64) || 'message';
    const mime = media.mimetype?.split(';')[0]?.trim().toLowerCase();
    const named = path.extname(media.fileName?.toLowerCase() ?? '').slice(1);
    const ext =
      Object.keys(MIME).find((e) => MIME[e] === mime) ??
      (/^[a-z0-9]{1,8}$/.test(named) ? named : DEFAULT_EXT[media.kind]);
    let name = `${opts.timeMs}-${id}.${ext}`;
    // A message delivered twice (notify, then append after a reconnect) keeps its first file.
    if (!inToAgent(opts, folder, [MEDIA_DIR], (dir) => dir.lstat(name))?.isFile()) {
      await fs.promises.mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
      await download(tmp, opts, maxBytes);
      name = publishMedia(opts, folder, tmp, name);
    }
    return { ok: true, containerPath: `${CONTAINER_PATHS.inbox}/${MEDIA_DIR}/${name}` };
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    logger.warn({ err, folder }, 'whatsapp attachment not saved');
    return {
      ok: false,
      reason: err instanceof MediaError ? err.message : 'the media folder could not be written',
    };
  }
}

async function download(tmp: string, opts: SaveMediaOptions, maxBytes: number): Promise<void> {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 120_000);
  const started = (opts.download ?? baileysDownload)(opts.message, opts.sock);
  let total = 0;
  try {
    const timeout = new Promise<never>((_, reject) => signal.addEventListener('abort', reject));
    const source = await Promise.race([started, timeout]);
    await pipeline(
      Buffer.isBuffer(source) ? [source] : source,
      async function* (chunks: AsyncIterable<Uint8Array> | Buffer[]) {
        for await (const chunk of chunks) {
          if ((total += chunk.length) > maxBytes) throw new MediaError(`too large (over ${mb(maxBytes)})`);
          yield chunk;
        }
      },
      fs.createWriteStream(tmp, { flags: 'wx' }),
      { signal },
    );
  } catch (err) {
    // One that came after the deadline holds nothing open.
    void started.then(
      (s) => (s as Partial<Readable>).destroy?.(),
      () => {},
    );
    if (err instanceof MediaError) throw err;
    throw new MediaError(signal.aborted ? 'download timed out' : 'download failed', { cause: err });
  }
}

// The caption comes first, so one that starts with the trigger still triggers.
export function describeMedia({ kind, fileName }: MediaInfo, result: SaveMediaResult, caption: string) {
  // Safe to show on one line inside brackets.
  const original = fileName
    ?.replace(/[\p{Cc}\p{Cf}[\]]/gu, '')
    .trim()
    .slice(0, 120);
  const reference = result.ok
    ? `[${kind}: ${result.containerPath}${original ? ` (${original})` : ''}]`
    : `[${kind}: the attachment could not be saved (${result.reason})]`;
  return caption ? `${caption}\n${reference}` : reference;
}

export type OutgoingContent =
  | { text: string }
  | { image: Buffer; mimetype: string; caption: string }
  | { document: Buffer; mimetype: string; fileName: string; caption: string };

// A `[file: ...]` marker sends the file, with the rest of the text as its caption.
export function outgoingContent(filesDir: string | undefined, text: string, prefix = ''): OutgoingContent {
  const marker = FILE_MARKER.exec(text);
  if (!marker || !filesDir) return { text: prefix + text };
  const [line, folder, name] = marker as unknown as [string, string, string];
  const data = withSafeDir(filesDir, [folder], {}, (dir) => dir.readFile(name, MAX_FILE_BYTES));
  if (!data) throw new ChannelSendError(`sent file ${name} is gone`, 'permanent');
  const caption = (prefix + text.replace(line, '').trim()).trim();
  const mimetype = MIME[path.extname(name).slice(1).toLowerCase()] ?? 'application/octet-stream';
  if (mimetype.startsWith('image/')) return { image: data, mimetype, caption };
  return { document: data, mimetype, fileName: name.replace(/^\d+-[0-9a-f]{8}-/, ''), caption };
}
