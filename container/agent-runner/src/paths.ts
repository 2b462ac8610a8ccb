import path from 'node:path';

/**
 * Where things are inside the sandbox. The host mounts them at these fixed places; every one can
 * be overridden by environment for running the agent-runner directly on a machine (tests, debugging).
 */
export interface SandboxPaths {
  /** The group's files, CLAUDE.md memory, conversations/, media/ (read-write). */
  groupDir: string;
  /** Shared global CLAUDE.md (read-only, non-main groups only). */
  globalDir: string;
  /** Agent to host: messages/ and tasks/ (read-write; the host reads them link-safely). */
  ipcDir: string;
  /** Host to agent: input/, media/, current_tasks.json, available_groups.json (read-only). */
  inboxDir: string;
  /** api.sock (model proxy) and egress.sock (HTTP/CONNECT proxy); either may be absent. */
  proxyDir: string;
  /** One directory per allowlisted extra mount. */
  extraDir: string;
}

export function resolveSandboxPaths(env: NodeJS.ProcessEnv = process.env): SandboxPaths {
  const pick = (name: string, fallback: string) => path.resolve(env[name] || fallback);
  return {
    groupDir: pick('NANOCLAW_GROUP_DIR', '/workspace/group'),
    globalDir: pick('NANOCLAW_GLOBAL_DIR', '/workspace/global'),
    ipcDir: pick('NANOCLAW_IPC_DIR', '/workspace/ipc'),
    inboxDir: pick('NANOCLAW_INBOX_DIR', '/workspace/inbox'),
    proxyDir: pick('NANOCLAW_PROXY_DIR', '/run/nanoclaw'),
    extraDir: pick('NANOCLAW_EXTRA_DIR', '/workspace/extra'),
  };
}
