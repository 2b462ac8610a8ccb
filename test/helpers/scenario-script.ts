import { hasToolResult, isAgentTurn, lastUserText, type MockScript } from '../fixtures/mock-anthropic.js';

const unescape = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');

/**
 * A mock model driven by the chat message itself, so each e2e test says what the agent should do:
 *   "RUN: <shell>"   → the model calls Bash with that command, then replies "RESULT: <output>"
 *   "SEND: <text>"   → the model calls mcp__nanoclaw__send_message, then replies "SENT"
 *   "TOOL: <name> <json>" → the model calls any tool with that input, then replies "RESULT: <output>"
 *   anything else    → the model replies "ECHO: <last line of the message>"
 */
export const scenarioScript: MockScript = ({ body }) => {
  if (!isAgentTurn(body)) return { text: 'ok' };
  const text = unescape(lastUserText(body));
  if (hasToolResult(body)) return { text: `RESULT: ${text.trim()}` };
  const messageBodies = [...text.matchAll(/<message [^>]*>([\s\S]*?)<\/message>/g)].map((m) => m[1]!);
  const last = (messageBodies.at(-1) ?? text).replace(/^@\w+\s*/, '').trim();
  const run = /^RUN: ([\s\S]+)$/.exec(last);
  if (run) return { toolUse: { name: 'Bash', input: { command: run[1], description: 'test command' } } };
  const send = /^SEND: ([\s\S]+)$/.exec(last);
  if (send) return { toolUse: { name: 'mcp__nanoclaw__send_message', input: { text: send[1] } } };
  const tool = /^TOOL: (\S+) ([\s\S]+)$/.exec(last);
  if (tool) return { toolUse: { name: tool[1]!, input: JSON.parse(tool[2]!) as object } };
  return { text: `ECHO: ${last}` };
};
