import fs from 'node:fs';
import path from 'node:path';
import type { HookCallback } from '@anthropic-ai/claude-agent-sdk';
import { log } from './output.js';

type Entry = {
  type?: string;
  isMeta?: boolean;
  message?: { content?: string | { type?: string; text?: unknown }[] };
};

function turns(jsonl: string) {
  return jsonl.split('\n').flatMap((line) => {
    let entry: Entry;
    try {
      entry = JSON.parse(line);
    } catch {
      return [];
    }
    const { type, isMeta, message } = entry;
    if ((type !== 'user' && type !== 'assistant') || isMeta) return [];
    const content = message?.content ?? '';
    const text = (
      typeof content === 'string'
        ? content
        : (Array.isArray(content) ? content : [])
            .map((b) => (b?.type === 'text' && typeof b.text === 'string' ? b.text : ''))
            .filter(Boolean)
            .join('\n')
    ).trim();
    return text ? [{ role: type, text }] : [];
  });
}

// <dir>/<YYYY-MM-DD>-<first question>.md, never over an earlier one.
function archive(transcriptPath: string, dir: string, assistantName: string): string | null {
  if (!fs.existsSync(transcriptPath)) return null;
  const all = turns(fs.readFileSync(transcriptPath, 'utf8'));
  if (!all.length) return null;
  const words = (all.find((t) => t.role === 'user')?.text ?? '')
    .toLowerCase()
    .replace(/<[^>]*>/g, ' ')
    .match(/[a-z0-9]+/g);
  const now = new Date();
  const base = path.join(
    dir,
    `${now.toLocaleDateString('sv-SE')}-${words?.slice(0, 6).join('-') || 'conversation'}`,
  );
  fs.mkdirSync(dir, { recursive: true });
  let file = `${base}.md`;
  for (let n = 2; fs.existsSync(file); n++) file = `${base}-${n}.md`;
  const body = all.map((t) => `**${t.role === 'user' ? 'User' : assistantName}**:\n\n${t.text}\n`);
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
