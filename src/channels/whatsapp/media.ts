import fs from 'node:fs';
import path from 'node:path';
import { downloadMediaMessage, type WAMessage } from '@whiskeysockets/baileys';
import { isValidFolder } from '../../config.js';
import { logger } from '../../logger.js';
import type { MediaInfo } from './inbound.js';
import type { BaileysLogger, WASocketLike } from './socket.js';

/** Fetches an attachment's bytes; Baileys' downloadMediaMessage by default, a fake in tests. */
export type MediaDownloader = (
  message: WAMessage,
  sock: WASocketLike,
) => Promise<Buffer | AsyncIterable<Uint8Array>>;

export function baileysMediaDownloader(log: NonNullable<BaileysLogger>): MediaDownloader {
  return (message, sock) => {
    const reupload = sock.updateMediaMessage?.bind(sock);
    return downloadMediaMessage(
      message,
      'stream',
      {},
      reupload ? { logger: log, reuploadRequest: reupload } : undefined,
    );
  };
}

export const DEFAULT_MAX_MEDIA_BYTES = 50 * 1024 * 1024;
export const DEFAULT_MEDIA_TIMEOUT_MS = 120_000;

/** Where the group folder appears inside the sandbox. */
const CONTAINER_GROUP_DIR = '/workspace/group';

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'image/heic': 'heic',
  'video/mp4': 'mp4',
  'video/3gpp': '3gp',
  'video/quicktime': 'mov',
  'audio/ogg': 'ogg',
  'audio/mpeg': 'mp3',
  'audio/mp4': 'm4a',
  'audio/aac': 'aac',
  'audio/amr': 'amr',
  'audio/wav': 'wav',
  'application/pdf': 'pdf',
  'application/zip': 'zip',
  'application/json': 'json',
  'text/plain': 'txt',
  'text/csv': 'csv',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.ms-powerpoint': 'ppt',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
};

const DEFAULT_EXTENSION: Record<MediaInfo['kind'], string> = {
  image: 'jpg',
  video: 'mp4',
  audio: 'ogg',
  'voice note': 'ogg',
  document: 'bin',
};

/** A short extension of letters and digits only: from the mimetype, else the document's name. */
export function mediaExtension(media: MediaInfo): string {
  const mime = media.mimetype?.split(';')[0]?.trim().toLowerCase();
  const known = mime ? EXTENSIONS[mime] : undefined;
  if (known) return known;
  const fromName = media.fileName ? path.extname(media.fileName).slice(1).toLowerCase() : '';
  if (/^[a-z0-9]{1,8}$/.test(fromName)) return fromName;
  return DEFAULT_EXTENSION[media.kind];
}

/** `<ms>-<id>.<ext>`, built only from characters that cannot form a path. */
export function mediaFileName(timeMs: number, messageId: string, media: MediaInfo): string {
  const id = messageId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64) || 'message';
  return `${Math.trunc(timeMs)}-${id}.${mediaExtension(media)}`;
}

export type SaveMediaResult =
  { ok: true; hostPath: string; containerPath: string } | { ok: false; reason: string };

export interface SaveMediaOptions {
  groupsDir: string;
  folder: string;
  message: WAMessage;
  media: MediaInfo;
  timeMs: number;
  sock: WASocketLike;
  download: MediaDownloader;
  maxBytes: number;
  timeoutMs: number;
}

const mb = (bytes: number) => `${Math.ceil(bytes / (1024 * 1024))} MB`;

/**
 * Saves an attachment to groups/<folder>/media/. The group folder is writable by the group's agent,
 * so nothing there is trusted: the media directory must resolve to itself (not a symlink planted
 * elsewhere) and files are created exclusively, never through an existing link.
 */
export async function saveMedia(opts: SaveMediaOptions): Promise<SaveMediaResult> {
  if (!isValidFolder(opts.folder)) return { ok: false, reason: 'invalid group folder' };
  if (opts.media.fileLength !== undefined && opts.media.fileLength > opts.maxBytes) {
    return { ok: false, reason: `too large (${mb(opts.media.fileLength)}; limit ${mb(opts.maxBytes)})` };
  }
  const groupDir = path.join(opts.groupsDir, opts.folder);
  const mediaDir = path.join(groupDir, 'media');
  await fs.promises.mkdir(mediaDir, { recursive: true });
  const expectedDir = path.join(await fs.promises.realpath(groupDir), 'media');
  if ((await fs.promises.realpath(mediaDir)) !== expectedDir) {
    return { ok: false, reason: 'media directory is not a plain directory of the group folder' };
  }

  const fileName = mediaFileName(opts.timeMs, opts.message.key.id ?? '', opts.media);
  const hostPath = path.join(expectedDir, fileName);
  const containerPath = `${CONTAINER_GROUP_DIR}/media/${fileName}`;
  // A message delivered twice (notify, then append after a reconnect) keeps its first file.
  const existing = await fs.promises.lstat(hostPath).catch(() => undefined);
  if (existing?.isFile()) return { ok: true, hostPath, containerPath };

  const tmpPath = `${hostPath}.${process.pid}.tmp`;
  const outcome = await downloadTo(tmpPath, opts);
  if (outcome !== 'ok') {
    await fs.promises.rm(tmpPath, { force: true });
    return { ok: false, reason: outcome };
  }
  await fs.promises.rename(tmpPath, hostPath);
  return { ok: true, hostPath, containerPath };
}

async function downloadTo(tmpPath: string, opts: SaveMediaOptions): Promise<'ok' | string> {
  let timer: NodeJS.Timeout | undefined;
  let source: Buffer | AsyncIterable<Uint8Array> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MediaError('download timed out')), opts.timeoutMs);
  });
  deadline.catch(() => undefined);
  const started = opts.download(opts.message, opts.sock);
  try {
    source = await Promise.race([started, deadline]);
    await Promise.race([writeCapped(tmpPath, source, opts.maxBytes), deadline]);
    return 'ok';
  } catch (err) {
    // A stream that stalled, or arrives after the deadline, is destroyed so it holds nothing open.
    if (source) destroy(source);
    else void started.then(destroy, () => undefined);
    if (err instanceof MediaError) return err.message;
    logger.warn({ err, id: opts.message.key.id }, 'whatsapp media download failed');
    return 'download failed';
  } finally {
    clearTimeout(timer);
  }
}

/** A failure whose message is fit to show the agent (no host paths). */
class MediaError extends Error {}

function destroy(source: Buffer | AsyncIterable<Uint8Array>): void {
  (source as { destroy?: () => void }).destroy?.();
}

async function writeCapped(
  tmpPath: string,
  source: Buffer | AsyncIterable<Uint8Array>,
  maxBytes: number,
): Promise<void> {
  // 'wx': fails rather than follow a file or link that is already there.
  await fs.promises.rm(tmpPath, { force: true }); // a leftover of a crash, or a planted link: removed, not followed
  const file = await fs.promises.open(tmpPath, 'wx', 0o644);
  try {
    let total = 0;
    const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = Buffer.isBuffer(source) ? [source] : source;
    for await (const chunk of chunks) {
      total += chunk.length;
      if (total > maxBytes) throw new MediaError(`too large (over ${mb(maxBytes)})`);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
}

/**
 * What the agent sees for an attachment. The caption comes first so a caption that starts with
 * the trigger (`@Andy what is this?`) still triggers; the reference follows on its own line.
 */
export function describeMedia(media: MediaInfo, result: SaveMediaResult, caption: string): string {
  let reference: string;
  if (result.ok) {
    const original = media.kind === 'document' ? displayName(media.fileName) : '';
    reference = `[${media.kind}: ${result.containerPath}${original ? ` (${original})` : ''}]`;
  } else {
    reference = `[${media.kind}: the attachment could not be saved (${result.reason})]`;
  }
  return caption ? `${caption}\n${reference}` : reference;
}

/** The sender-chosen document name, made safe to show on one line inside brackets. */
function displayName(name: string | undefined): string {
  if (!name) return '';
  return name
    .replace(/[\p{Cc}\p{Cf}[\]]/gu, '')
    .trim()
    .slice(0, 120);
}
