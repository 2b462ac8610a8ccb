import fs from 'node:fs';
import path from 'node:path';
import type { HookCallback } from '@anthropic-ai/claude-agent-sdk';
import { log } from './output.js';

function parseTranscript(jsonl: string) {
  const turns: Array<{ role: 'user' | 'assistant'; text: string }> = [];
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

/** <dir>/<YYYY-MM-DD>-<first question>.md, never over an earlier one. */
function archive(transcriptPath: string, dir: string, assistantName: string): string | null {
  if (!fs.existsSync(transcriptPath)) return null;
  const turns = parseTranscript(fs.readFileSync(transcriptPath, 'utf8'));
  if (turns.length === 0) return null;
  const words = (turns.find((t) => t.role === 'user')?.text ?? '')
    .toLowerCase()
    .replace(/<[^>]*>/g, ' ')
    .match(/[a-z0-9]+/g);
  const now = new Date();
  const base = `${now.toLocaleDateString('sv-SE')}-${words?.slice(0, 6).join('-') || 'conversation'}`;
  fs.mkdirSync(dir, { recursive: true });
  let file = path.join(dir, `${base}.md`);
  for (let n = 2; fs.existsSync(file); n++) file = path.join(dir, `${base}-${n}.md`);
  const body = turns.map((t) => `**${t.role === 'user' ? 'User' : assistantName}**:\n\n${t.text}\n`);
  fs.writeFileSync(file, [`# Conversation archived ${now.toISOString()}\n`, ...body, ''].join('\n'));
  return file;
}

/** Compaction drops old turns from the session: keep a readable copy first. */
export const preCompactArchiver =
  (dir: string, assistantName: string): HookCallback =>
  async (input) => {
    if (input.hook_event_name !== 'PreCompact') return {};
    try {
      log('transcript archived before compaction', {
        file: archive(input.transcript_path, dir, assistantName),
      });
    } catch (err) {
      log('transcript archive failed', { error: (err as Error).message });
    }
    return {};
  };
