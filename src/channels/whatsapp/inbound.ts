import { normalizeMessageContent, type proto } from '@whiskeysockets/baileys';

/** Seconds as a number or a protobuf Long, as Baileys delivers `messageTimestamp` and `fileLength`. */
type ProtoNumber = number | { toNumber(): number } | null | undefined;

export function protoNumber(value: ProtoNumber): number | undefined {
  if (value === null || value === undefined) return undefined;
  const n = typeof value === 'number' ? value : value.toNumber();
  return Number.isFinite(n) ? n : undefined;
}

/** Message time in ms since the epoch; `fallbackMs` when the message carries none. */
export function messageTimeMs(timestamp: ProtoNumber, fallbackMs: number): number {
  const seconds = protoNumber(timestamp);
  return seconds && seconds > 0 ? seconds * 1000 : fallbackMs;
}

/** Unwraps disappearing, view-once, edited and captioned-document envelopes. */
export function unwrapContent(message: proto.IMessage | null | undefined): proto.IMessage | undefined {
  return normalizeMessageContent(message);
}

/** The text a person typed: plain, extended (links, replies) or a media caption. */
export function extractText(content: proto.IMessage): string {
  return (
    content.conversation ||
    content.extendedTextMessage?.text ||
    content.imageMessage?.caption ||
    content.videoMessage?.caption ||
    content.documentMessage?.caption ||
    ''
  );
}

export type MediaKind = 'image' | 'video' | 'audio' | 'voice note' | 'document';

export interface MediaInfo {
  kind: MediaKind;
  mimetype: string | undefined;
  /** The sender's name for a document: shown to the agent, never used as a path. */
  fileName: string | undefined;
  /** Declared size in bytes, when the sender's client said. */
  fileLength: number | undefined;
}

/** The attachment we save, if the message has one (stickers and the like are left out). */
export function findMedia(content: proto.IMessage): MediaInfo | undefined {
  const info = (
    kind: MediaKind,
    m: { mimetype?: string | null; fileLength?: ProtoNumber },
    fileName?: string | null,
  ): MediaInfo => ({
    kind,
    mimetype: m.mimetype ?? undefined,
    fileName: fileName ?? undefined,
    fileLength: protoNumber(m.fileLength),
  });
  if (content.imageMessage) return info('image', content.imageMessage);
  if (content.videoMessage) return info('video', content.videoMessage);
  if (content.audioMessage)
    return info(content.audioMessage.ptt ? 'voice note' : 'audio', content.audioMessage);
  if (content.documentMessage)
    return info('document', content.documentMessage, content.documentMessage.fileName);
  return undefined;
}

/** The user part of a jid (`4915123@s.whatsapp.net` → `4915123`), device suffix dropped. */
export function jidUser(jid: string): string {
  return (jid.split('@')[0] ?? jid).split(':')[0] ?? jid;
}

/**
 * Whether a message is the assistant's own. On a shared number the assistant's replies carry the
 * `<Name>:` prefix and come back to us as the person's own (fromMe) messages; with its own number,
 * everything sent from that number is the assistant's.
 */
export function isAssistantMessage(opts: {
  fromMe: boolean;
  text: string;
  assistantName: string;
  assistantHasOwnNumber: boolean;
}): boolean {
  if (!opts.fromMe) return false;
  if (opts.assistantHasOwnNumber) return true;
  return opts.text.startsWith(`${opts.assistantName}:`);
}
