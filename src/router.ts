import type { NewMessage } from './types.js';

/** `^@<name>\b`, case-insensitive, on the trimmed text; the stored trigger may lack the "@". */
export function hasTrigger(text: string, trigger: string): boolean {
  const name = trigger.replace(/^@/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^@${name}\\b`, 'i').test(text.trim());
}

const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function formatMessages(messages: Pick<NewMessage, 'senderName' | 'timestamp' | 'content'>[]): string {
  const lines = messages.map(
    (m) =>
      `<message sender="${escapeXml(m.senderName)}" time="${escapeXml(m.timestamp)}">${escapeXml(m.content)}</message>`,
  );
  return `<messages>\n${lines.join('\n')}\n</messages>`;
}

/** The agent's private reasoning never reaches a chat. */
export function stripInternal(text: string): string {
  return text.replace(/<internal>[\s\S]*?(<\/internal>|$)/g, '').trim();
}

export function formatOutbound(text: string | null | undefined, sender?: string): string | null {
  const clean = text ? stripInternal(text) : '';
  if (!clean) return null;
  return sender ? `${sender}: ${clean}` : clean;
}

/** On a shared WhatsApp number the assistant's replies come back as the user's, "Andy: …". */
export function isAssistantEcho(
  message: Pick<NewMessage, 'content' | 'isBotMessage'>,
  assistantName: string,
): boolean {
  return message.isBotMessage || message.content.startsWith(`${assistantName}:`);
}
