import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { downloadMediaMessage, type WAMessage } from '@whiskeysockets/baileys';
import { isValidFolder, MAX_FILE_BYTES } from '../../contract/ipc.js';
import { FILE_MARKER } from '../../ipc/message-handler.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { logger } from '../../logger.js';
import { withSafeDir } from '../../safe-fs.js';
import { CONTAINER_PATHS } from '../../sandbox/mount-plan.js';
import { ChannelSendError } from '../send-error.js';
import type { MediaInfo } from './inbound.js';
import { baileysLogger, type WASocketLike } from './socket.js';

type Source = Buffer | AsyncIterable<Uint8Array>;
export type MediaDownloader = (message: WAMessage, sock: WASocketLike) => Promise<Source>;

const baileysDownload: MediaDownloader = (message, sock) => {
  const reuploadRequest = sock.updateMediaMessage?.bind(sock);
  return downloadMediaMessage(
    message,
    'stream',
    {},
    reuploadRequest && { logger: baileysLogger(), reuploadRequest },
  );
};

const OOXML = 'application/vnd.openxmlformats-officedocument.';
const EXTENSIONS = new Map([
  ...`image/png image/webp image/gif image/heic video/mp4 audio/ogg audio/aac audio/amr audio/wav
      application/pdf application/zip application/json text/csv`
    .split(/\s+/)
    .map((mime): [string, string] => [mime, mime.split('/')[1]!]),
  ['image/jpeg', 'jpg'],
  ['video/3gpp', '3gp'],
  ['video/quicktime', 'mov'],
  ['audio/mpeg', 'mp3'],
  ['audio/mp4', 'm4a'],
  ['text/plain', 'txt'],
  ['application/msword', 'doc'],
  ['application/vnd.ms-excel', 'xls'],
  ['application/vnd.ms-powerpoint', 'ppt'],
  [`${OOXML}wordprocessingml.document`, 'docx'],
  [`${OOXML}spreadsheetml.sheet`, 'xlsx'],
  [`${OOXML}presentationml.presentation`, 'pptx'],
]);
const DEFAULT_EXTENSION = { image: 'jpg', video: 'mp4', audio: 'ogg', 'voice note': 'ogg', document: 'bin' };

/** `<ms>-<id>.<ext>`, built only from characters that cannot form a path. */
function mediaFileName(timeMs: number, messageId: string, media: MediaInfo): string {
  const id = messageId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64) || 'message';
  const mime = media.mimetype?.split(';')[0]?.trim().toLowerCase() ?? '';
  const fromName = path.extname((media.fileName ?? '').toLowerCase()).slice(1);
  const ext =
    EXTENSIONS.get(mime) ?? (/^[a-z0-9]{1,8}$/.test(fromName) ? fromName : DEFAULT_EXTENSION[media.kind]);
  return `${Math.trunc(timeMs)}-${id}.${ext}`;
}

export type SaveMediaResult = { ok: true; containerPath: string } | { ok: false; reason: string };

export interface SaveMediaOptions {
  ipcDir: string;
  /** Host-private (never mounted), for downloads in progress. */
  tmpDir: string;
  folder: string;
  message: WAMessage;
  media: MediaInfo;
  timeMs: number;
  sock: WASocketLike;
  download?: MediaDownloader;
  maxBytes?: number;
  timeoutMs?: number;
}

const mb = (bytes: number) => `${Math.ceil(bytes / (1024 * 1024))} MB`;

/** A failure whose message is fit to show the agent (no host paths). */
class MediaError extends Error {}

/**
 * Downloads into a host-private folder, then moves the file into the group's read-only inbox, where
 * no agent can plant anything to redirect it. Never throws.
 */
export async function saveMedia(opts: SaveMediaOptions): Promise<SaveMediaResult> {
  try {
    const result = await save(opts);
    if (!result.ok)
      logger.warn({ folder: opts.folder, reason: result.reason }, 'whatsapp attachment not saved');
    return result;
  } catch (err) {
    logger.error({ err, folder: opts.folder }, 'whatsapp attachment not saved');
    return { ok: false, reason: 'the media folder could not be written' };
  }
}

async function save(opts: SaveMediaOptions): Promise<SaveMediaResult> {
  const { folder, media, maxBytes = 50 * 1024 * 1024 } = opts;
  if (!isValidFolder(folder)) return { ok: false, reason: 'invalid group folder' };
  const declared = media.fileLength ?? 0;
  if (declared > maxBytes) return { ok: false, reason: `too large (${mb(declared)}; limit ${mb(maxBytes)})` };
  let name = mediaFileName(opts.timeMs, opts.message.key.id ?? '', media);
  // A message delivered twice (notify, then append after a reconnect) keeps its first file.
  if (!inToAgent(opts, folder, [MEDIA_DIR], (dir) => dir.lstat(name))?.isFile()) {
    await fs.promises.mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
    const tmp = path.join(opts.tmpDir, `${name}.${crypto.randomBytes(4).toString('hex')}.part`);
    const failure = await download(tmp, opts, maxBytes);
    if (failure) {
      await fs.promises.rm(tmp, { force: true });
      return { ok: false, reason: failure };
    }
    name = publishMedia(opts, folder, tmp, name);
  }
  return { ok: true, containerPath: `${CONTAINER_PATHS.inbox}/${MEDIA_DIR}/${name}` };
}

async function download(tmp: string, opts: SaveMediaOptions, maxBytes: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MediaError('download timed out')), opts.timeoutMs ?? 120_000);
  });
  deadline.catch(() => undefined);
  const started = (opts.download ?? baileysDownload)(opts.message, opts.sock);
  let source: Source | undefined;
  try {
    source = await Promise.race([started, deadline]);
    await Promise.race([writeCapped(tmp, source, maxBytes), deadline]);
    return undefined;
  } catch (err) {
    // A stream that stalled, or came after the deadline, is destroyed so it holds nothing open.
    if (source) destroy(source);
    else void started.then(destroy, () => undefined);
    if (err instanceof MediaError) return err.message;
    logger.warn({ err, id: opts.message.key.id }, 'whatsapp media download failed');
    return 'download failed';
  } finally {
    clearTimeout(timer);
  }
}

const destroy = (source: Source) => (source as { destroy?: () => void }).destroy?.();

async function writeCapped(tmp: string, source: Source, maxBytes: number): Promise<void> {
  const file = await fs.promises.open(tmp, 'wx', 0o644);
  try {
    let total = 0;
    for await (const chunk of Buffer.isBuffer(source) ? [source] : source) {
      total += chunk.length;
      if (total > maxBytes) throw new MediaError(`too large (over ${mb(maxBytes)})`);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
}

/** The caption comes first, so one that starts with the trigger still triggers. */
export function describeMedia(media: MediaInfo, result: SaveMediaResult, caption: string): string {
  // The sender-chosen document name, made safe to show on one line inside brackets.
  const original =
    media.kind === 'document'
      ? media.fileName
          ?.replace(/[\p{Cc}\p{Cf}[\]]/gu, '')
          .trim()
          .slice(0, 120)
      : '';
  const reference = result.ok
    ? `[${media.kind}: ${result.containerPath}${original ? ` (${original})` : ''}]`
    : `[${media.kind}: the attachment could not be saved (${result.reason})]`;
  return caption ? `${caption}\n${reference}` : reference;
}

export type OutgoingContent =
  | { text: string }
  | { image: Buffer; mimetype: string; caption: string }
  | { document: Buffer; mimetype: string; fileName: string; caption: string };

/** An outbox text carrying a `[file: ...]` marker goes as an image or a document with the rest as caption. */
export function outgoingContent(filesDir: string | undefined, text: string, prefix = ''): OutgoingContent {
  const marker = FILE_MARKER.exec(text);
  if (!marker || !filesDir) return { text: `${prefix}${text}` };
  const [line, folder, name] = marker as unknown as [string, string, string];
  const data = withSafeDir(filesDir, [folder], {}, (dir) => dir.readFile(name, MAX_FILE_BYTES));
  if (!data) throw new ChannelSendError(`sent file ${name} is gone`, 'permanent');
  const caption = `${prefix}${text.replace(line, '').trim()}`.trim();
  const ext = path.extname(name).slice(1).toLowerCase();
  const mimetype = [...EXTENSIONS].find(([, e]) => e === ext)?.[0] ?? 'application/octet-stream';
  if (/^image\/(png|jpeg|webp|gif)$/.test(mimetype)) return { image: data, mimetype, caption };
  return { document: data, mimetype, fileName: name.replace(/^\d+-[0-9a-f]{8}-/, ''), caption };
}
