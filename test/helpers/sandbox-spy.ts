import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { SandboxRuntime, SandboxSpec } from '../../src/sandbox/runtime.js';

export interface SpawnRecord {
  spec: SandboxSpec;
  child: ChildProcess;
  /** Everything the host wrote to the sandbox's stdin (the AgentInput JSON). */
  stdin: string;
}

/**
 * Wraps a real runtime and records every sandbox it starts: the spec, the host-side child process
 * and the exact bytes written to its stdin. Nothing is replaced; the sandbox runs as usual.
 */
export function spyOnRuntime(runtime: SandboxRuntime): { runtime: SandboxRuntime; spawns: SpawnRecord[] } {
  const spawns: SpawnRecord[] = [];
  const spied: SandboxRuntime = {
    kind: runtime.kind,
    ensureRunning: () => runtime.ensureRunning(),
    imageExists: (image) => runtime.imageExists(image),
    stop: (name) => runtime.stop(name),
    cleanupOrphans: (id) => runtime.cleanupOrphans(id),
    spawn(spec) {
      const child = runtime.spawn(spec);
      const record: SpawnRecord = { spec, child, stdin: '' };
      spawns.push(record);
      const stdin = child.stdin;
      if (stdin) {
        const write = stdin.write.bind(stdin) as (...args: unknown[]) => boolean;
        const end = stdin.end.bind(stdin) as (...args: unknown[]) => typeof stdin;
        const capture = (chunk: unknown) => {
          if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) record.stdin += chunk.toString();
        };
        stdin.write = ((chunk: unknown, ...rest: unknown[]) => {
          capture(chunk);
          return write(chunk, ...rest);
        }) as typeof stdin.write;
        stdin.end = ((chunk?: unknown, ...rest: unknown[]) => {
          if (typeof chunk !== 'function') capture(chunk);
          return end(chunk, ...rest);
        }) as typeof stdin.end;
      }
      return child;
    },
  };
  return { runtime: spied, spawns };
}

/** `pid` and all its descendants, read from the host's /proc. */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++)
    for (const [child, parent] of parentOf) if (parent === tree[i] && !tree.includes(child)) tree.push(child);
  return tree;
}

/** /proc/<pid>/cmdline and environ as text ('' once the process is gone). */
export function processText(pid: number): { cmdline: string; environ: string } {
  const read = (file: string) => {
    try {
      return fs.readFileSync(`/proc/${pid}/${file}`).toString('utf8').replace(/\0/g, '\n');
    } catch {
      return '';
    }
  };
  return { cmdline: read('cmdline'), environ: read('environ') };
}
