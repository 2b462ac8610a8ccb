import fs from 'node:fs';
import path from 'node:path';

/** What an end-to-end run left behind, read back for assertions. */

/** Every tool_result the mock model has been sent, with its error flag. */
export function toolResultsSeen(
  requests: Array<{ body: unknown }>,
): Array<{ text: string; isError: boolean }> {
  const seen: Array<{ text: string; isError: boolean }> = [];
  for (const { body } of requests) {
    const messages = (body as { messages?: Array<{ role: string; content: unknown }> })?.messages ?? [];
    for (const message of messages) {
      if (message.role !== 'user' || !Array.isArray(message.content)) continue;
      for (const block of message.content as Array<Record<string, unknown>>) {
        if (block.type !== 'tool_result') continue;
        const content = block.content;
        const text =
          typeof content === 'string'
            ? content
            : Array.isArray(content)
              ? content.map((c: { text?: string }) => c.text ?? '').join('\n')
              : '';
        seen.push({ text, isError: block.is_error === true });
      }
    }
  }
  return seen;
}

/** The sandbox run logs of a group: which sandbox ran, and whether it ran a task. */
export function sandboxRuns(
  home: string,
  folder: string,
): Array<{ sandbox: string; isScheduledTask: boolean }> {
  const dir = path.join(home, 'groups', folder, 'logs');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .map((text) => ({
      sandbox: /^Sandbox: (.+)$/m.exec(text)?.[1] ?? '',
      isScheduledTask:
        (JSON.parse(/^Input: (.+)$/m.exec(text)?.[1] ?? '{}') as { isScheduledTask?: boolean })
          .isScheduledTask === true,
    }));
}
