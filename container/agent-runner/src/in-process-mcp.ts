import {
  createSdkMcpServer,
  tool,
  type McpSdkServerConfigWithInstance,
  type SdkMcpToolDefinition,
} from '@anthropic-ai/claude-agent-sdk';
import type { ToolContext } from './mcp-tools.js';
import { defineNanoclawTools, toolReply } from './nanoclaw-tools.js';

/**
 * The nanoclaw tools served inside the agent-runner's own process. A stdio server would be a
 * second Node process whose start (0.1–0.4 s on a small machine) sits on every cold start, because alwaysLoad makes
 * Claude Code wait for the server before its first model request; in-process it is ready at once.
 */
export function nanoclawSdkServer(ctx: ToolContext): McpSdkServerConfigWithInstance {
  const tools: SdkMcpToolDefinition[] = [];
  defineNanoclawTools(ctx, (def) => {
    const definition = tool(def.name, def.description, def.inputSchema, (args) =>
      toolReply(() => def.run(args as Parameters<typeof def.run>[0])),
    );
    tools.push(definition as unknown as SdkMcpToolDefinition);
  });
  // alwaysLoad: MCP tools are otherwise deferred behind ToolSearch; ours are few and always wanted.
  return createSdkMcpServer({ name: 'nanoclaw', version: '1.0.0', tools, alwaysLoad: true });
}
