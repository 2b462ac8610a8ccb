import fs from 'node:fs';
import path from 'node:path';
import type { HookCallback } from '@anthropic-ai/claude-agent-sdk';
import { log } from './log.js';

interface TranscriptTurn {
  role: 'user' | 'assistant';
  text: string;
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((block: { type?: string; text?: string }) =>
      block?.type === 'text' && typeof block.text === 'string' ? block.text : '',
    )
    .filter((t) => t.length > 0)
    .join('\n');
}

/** The readable turns of a session transcript (JSONL); tool calls and results are left out. */
export function parseTranscript(jsonl: string): TranscriptTurn[] {
  const turns: TranscriptTurn[] = [];
  for (const line of jsonl.split('\n')) {
    if (!line.trim()) continue;
    let entry: { type?: string; isMeta?: boolean; message?: { content?: unknown } };
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if ((entry.type !== 'user' && entry.type !== 'assistant') || entry.isMeta) continue;
    const text = contentText(entry.message?.content).trim();
    if (text) turns.push({ role: entry.type, text });
  }
  return turns;
}

export function slugify(text: string, maxWords = 6): string {
  const slug = text
    .toLowerCase()
    .replace(/<[^>]*>/g, ' ')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .slice(0, maxWords)
    .join('-');
  return slug || 'conversation';
}

export function formatTranscriptMarkdown(turns: TranscriptTurn[], assistantName: string, when: Date): string {
  const lines = [`# Conversation archived ${when.toISOString()}`, ''];
  for (const turn of turns) {
    lines.push(`**${turn.role === 'user' ? 'User' : assistantName}**:`, '', turn.text, '');
  }
  return lines.join('\n');
}

function localDate(when: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`;
}

/** Writes the transcript to <dir>/<YYYY-MM-DD>-<slug>.md, never overwriting an earlier one. */
export function archiveTranscript(
  transcriptPath: string,
  conversationsDir: string,
  assistantName: string,
  when = new Date(),
): string | null {
  if (!fs.existsSync(transcriptPath)) return null;
  const turns = parseTranscript(fs.readFileSync(transcriptPath, 'utf8'));
  if (turns.length === 0) return null;
  const firstUser = turns.find((t) => t.role === 'user');
  const base = `${localDate(when)}-${slugify(firstUser?.text ?? '')}`;
  fs.mkdirSync(conversationsDir, { recursive: true });
  let file = path.join(conversationsDir, `${base}.md`);
  for (let n = 2; fs.existsSync(file); n++) file = path.join(conversationsDir, `${base}-${n}.md`);
  fs.writeFileSync(file, formatTranscriptMarkdown(turns, assistantName, when));
  return file;
}

/** PreCompact hook: compaction drops old turns from the session, so keep a readable copy first. */
export function preCompactArchiver(conversationsDir: string, assistantName: string): HookCallback {
  return async (input) => {
    if (input.hook_event_name !== 'PreCompact') return {};
    try {
      const file = archiveTranscript(input.transcript_path, conversationsDir, assistantName);
      log('transcript archived before compaction', { file });
    } catch (err) {
      log('transcript archive failed', { error: (err as Error).message });
    }
    return {};
  };
}
