import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { ZodRawShape } from 'zod/v3';
import type { ToolContext } from './mcp-tools.js';
import { defineNanoclawTools, toolReply } from './nanoclaw-tools.js';

/**
 * The nanoclaw tools as a standalone MCP stdio server, for MCP clients other than the
 * agent-runner (which serves the same tools in-process). Its tools reach the host only by writing
 * files into the group's IPC directory.
 */
function contextFromEnv(env: NodeJS.ProcessEnv): ToolContext {
  const chatJid = env.NANOCLAW_CHAT_JID;
  const groupFolder = env.NANOCLAW_GROUP_FOLDER;
  if (!chatJid || !groupFolder) throw new Error('NANOCLAW_CHAT_JID and NANOCLAW_GROUP_FOLDER must be set');
  return {
    chatJid,
    groupFolder,
    isMain: env.NANOCLAW_IS_MAIN === '1' || env.NANOCLAW_IS_MAIN === 'true',
    ipcDir: env.NANOCLAW_IPC_DIR || '/workspace/ipc',
    inboxDir: env.NANOCLAW_INBOX_DIR || '/workspace/inbox',
    tz: env.TZ || undefined,
  };
}

export function createNanoclawServer(ctx: ToolContext): McpServer {
  const server = new McpServer({ name: 'nanoclaw', version: '1.0.0' });
  defineNanoclawTools(ctx, (tool) => {
    // Registered as a plain shape: the MCP SDK validates args against it before the call.
    const inputSchema: ZodRawShape = tool.inputSchema;
    server.registerTool(tool.name, { description: tool.description, inputSchema }, (args) =>
      toolReply(() => tool.run(args as Parameters<typeof tool.run>[0])),
    );
  });
  return server;
}

async function main(): Promise<void> {
  const server = createNanoclawServer(contextFromEnv(process.env));
  await server.connect(new StdioServerTransport());
}

main().catch((err: unknown) => {
  process.stderr.write(`[nanoclaw-mcp] ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
