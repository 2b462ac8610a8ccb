import fs from 'node:fs';
import path from 'node:path';
import type { HookCallback } from '@anthropic-ai/claude-agent-sdk';
import { log } from './output.js';

type Turn = { role: 'user' | 'assistant'; text: string };

/** Tool calls and results are left out. */
function parseTranscript(jsonl: string): Turn[] {
  const turns: Turn[] = [];
  for (const line of jsonl.split('\n')) {
    let entry: { type?: string; isMeta?: boolean; message?: { content?: unknown } };
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if ((entry.type !== 'user' && entry.type !== 'assistant') || entry.isMeta) continue;
    const content = entry.message?.content;
    const blocks = Array.isArray(content) ? (content as Array<{ type?: string; text?: unknown }>) : [];
    const text = (
      typeof content === 'string'
        ? content
        : blocks
            .flatMap((b) => (b?.type === 'text' && typeof b.text === 'string' && b.text ? [b.text] : []))
            .join('\n')
    ).trim();
    if (text) turns.push({ role: entry.type, text });
  }
  return turns;
}

/** Writes <dir>/<YYYY-MM-DD>-<slug of the first question>.md, never over an earlier one. */
function archiveTranscript(
  transcriptPath: string,
  dir: string,
  assistantName: string,
  when = new Date(),
): string | null {
  if (!fs.existsSync(transcriptPath)) return null;
  const turns = parseTranscript(fs.readFileSync(transcriptPath, 'utf8'));
  if (turns.length === 0) return null;
  const words = (turns.find((t) => t.role === 'user')?.text ?? '')
    .toLowerCase()
    .replace(/<[^>]*>/g, ' ')
    .match(/[a-z0-9]+/g);
  const date = `${when.getFullYear()}-${String(when.getMonth() + 1).padStart(2, '0')}-${String(when.getDate()).padStart(2, '0')}`;
  const base = `${date}-${words?.slice(0, 6).join('-') || 'conversation'}`;
  fs.mkdirSync(dir, { recursive: true });
  let file = path.join(dir, `${base}.md`);
  for (let n = 2; fs.existsSync(file); n++) file = path.join(dir, `${base}-${n}.md`);
  const body = turns.map((t) => `**${t.role === 'user' ? 'User' : assistantName}**:\n\n${t.text}\n`);
  fs.writeFileSync(file, [`# Conversation archived ${when.toISOString()}\n`, ...body, ''].join('\n'));
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
