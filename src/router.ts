import type { NewMessage } from './types.js';

/** `^@<name>\b`, case-insensitive, on the trimmed text; the stored trigger may lack the "@". */
export function hasTrigger(text: string, trigger: string) {
  const name = trigger.replace(/^@/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^@${name}\\b`, 'i').test(text.trim());
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const esc = (text: string) => text.replace(/[&<>"]/g, (c) => ENTITIES[c]!);

export function formatMessages(messages: Pick<NewMessage, 'senderName' | 'timestamp' | 'content'>[]) {
  const lines = messages.map(
    (m) => `<message sender="${esc(m.senderName)}" time="${esc(m.timestamp)}">${esc(m.content)}</message>`,
  );
  return `<messages>\n${lines.join('\n')}\n</messages>`;
}

/** The agent's private reasoning (`<internal>`) never reaches a chat. */
export function formatOutbound(text: string | null | undefined, sender?: string): string | null {
  const clean = text?.replace(/<internal>[\s\S]*?(<\/internal>|$)/g, '').trim();
  return clean ? (sender ? `${sender}: ${clean}` : clean) : null;
}

/** On a shared WhatsApp number the assistant's replies come back as the user's, "Andy: …". */
export const isAssistantEcho = (m: Pick<NewMessage, 'content' | 'isBotMessage'>, assistantName: string) =>
  m.isBotMessage || m.content.startsWith(`${assistantName}:`);
