import { toNumber, type proto } from '@whiskeysockets/baileys';

export function extractText(c: proto.IMessage): string {
  return (
    c.conversation ||
    c.extendedTextMessage?.text ||
    c.imageMessage?.caption ||
    c.videoMessage?.caption ||
    c.documentMessage?.caption ||
    ''
  );
}

export interface MediaInfo {
  kind: 'image' | 'video' | 'audio' | 'voice note' | 'document';
  mimetype?: string | null;
  /** The sender's name for a document: shown to the agent, never used as a path. */
  fileName?: string | null;
  fileLength?: number;
}

/** The attachment we save, if any (not stickers and the like). */
export function findMedia(c: proto.IMessage): MediaInfo | undefined {
  type Part = { mimetype?: string | null; fileLength?: Parameters<typeof toNumber>[0] };
  const info = (kind: MediaInfo['kind'], m: Part, fileName?: string | null): MediaInfo => ({
    kind,
    mimetype: m.mimetype,
    fileName,
    fileLength: toNumber(m.fileLength),
  });
  if (c.imageMessage) return info('image', c.imageMessage);
  if (c.videoMessage) return info('video', c.videoMessage);
  if (c.audioMessage) return info(c.audioMessage.ptt ? 'voice note' : 'audio', c.audioMessage);
  if (c.documentMessage) return info('document', c.documentMessage, c.documentMessage.fileName);
  return undefined;
}
