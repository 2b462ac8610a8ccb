import path from 'node:path';

export type SandboxPaths = ReturnType<typeof resolveSandboxPaths>;

/** The sandbox's mounts; each can be moved by environment to run on a machine (bwrap, tests). */
export function resolveSandboxPaths(env: NodeJS.ProcessEnv = process.env) {
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
