import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { downloadMediaMessage, type WAMessage } from '@whiskeysockets/baileys';
import { isValidFolder } from '../../config.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
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

/** Where the host-to-agent IPC part appears inside the sandbox. */
const CONTAINER_INBOX_DIR = '/workspace/inbox';

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
  /** hostPath: the file's name in the group's media/ folder. */
  { ok: true; hostPath: string; containerPath: string } | { ok: false; reason: string };

export interface SaveMediaOptions {
  /** data/ipc: the file is published in <folder>/to-agent/media/. */
  ipcDir: string;
  /** A host-private folder (never mounted) for downloads in progress. */
  tmpDir: string;
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
 * Saves an attachment where the group's agent can read it: downloaded into a host-private folder
 * first, then moved into the read-only host-to-agent part (data/ipc/<folder>/to-agent/media/). No
 * agent can write there, so nothing it planted can redirect the download.
 */
export async function saveMedia(opts: SaveMediaOptions): Promise<SaveMediaResult> {
  if (!isValidFolder(opts.folder)) return { ok: false, reason: 'invalid group folder' };
  if (opts.media.fileLength !== undefined && opts.media.fileLength > opts.maxBytes) {
    return { ok: false, reason: `too large (${mb(opts.media.fileLength)}; limit ${mb(opts.maxBytes)})` };
  }
  const fileName = mediaFileName(opts.timeMs, opts.message.key.id ?? '', opts.media);
  const containerPath = (name: string) => `${CONTAINER_INBOX_DIR}/${MEDIA_DIR}/${name}`;
  // A message delivered twice (notify, then append after a reconnect) keeps its first file.
  const existing = inToAgent(opts, opts.folder, [MEDIA_DIR], (dir) => dir.lstat(fileName));
  if (existing?.isFile()) return { ok: true, hostPath: fileName, containerPath: containerPath(fileName) };

  await fs.promises.mkdir(opts.tmpDir, { recursive: true, mode: 0o700 });
  const tmpPath = path.join(opts.tmpDir, `${fileName}.${crypto.randomBytes(4).toString('hex')}.part`);
  const outcome = await downloadTo(tmpPath, opts);
  if (outcome !== 'ok') {
    await fs.promises.rm(tmpPath, { force: true });
    return { ok: false, reason: outcome };
  }
  const published = publishMedia(opts, opts.folder, tmpPath, fileName);
  return { ok: true, hostPath: published, containerPath: containerPath(published) };
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
