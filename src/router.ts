import type { NewMessage } from './types.js';

/** Routing rules shared by the message loop and the outbound path: triggers, prompts, replies. */

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * `^@<name>\b`, case-insensitive, on the trimmed text: "@Andy hi", "@andy", "@Andy's" match;
 * "hi @Andy" and "@Andyx" don't. A group's trigger may be stored with or without the "@".
 */
export function triggerPattern(trigger: string): RegExp {
  const name = trigger.replace(/^@/, '');
  return new RegExp(`^@${escapeRegExp(name)}\\b`, 'i');
}

export function hasTrigger(text: string, trigger: string): boolean {
  return triggerPattern(trigger).test(text.trim());
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The prompt an agent sees: every pending message, sender and time escaped, oldest first. */
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

/** What to send for an agent's result, or null when nothing is left to say. */
export function formatOutbound(text: string | null | undefined, sender?: string): string | null {
  if (!text) return null;
  const clean = stripInternal(text);
  if (!clean) return null;
  return sender ? `${sender}: ${clean}` : clean;
}

/**
 * On a shared WhatsApp number the assistant's replies come back as the user's own messages,
 * recognisable only by the "Andy:" prefix; they must never be fed back as input.
 */
export function isAssistantEcho(
  message: Pick<NewMessage, 'content' | 'isBotMessage'>,
  assistantName: string,
): boolean {
  if (message.isBotMessage) return true;
  return message.content.startsWith(`${assistantName}:`);
}
